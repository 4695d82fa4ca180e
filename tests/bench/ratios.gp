# Chart of popbridge's advantage per workload, from the data file run.sh writes
# (workload, A vs B, A vs C). Every bar is oriented so that above 1 means popbridge (A) is better:
# for W1 it is the peer's session time divided by popbridge's, for the others popbridge's MB/s
# or sessions/s divided by the peer's.
#
#   gnuplot -e "datafile='ratios.dat'; outfile='ratios.svg'" tests/bench/ratios.gp
if (!exists("datafile")) datafile = 'ratios.dat'
if (!exists("outfile")) outfile = 'ratios.svg'

set terminal svg size 900,480 dynamic enhanced font 'Helvetica,13' background rgb 'white'
set output outfile
set title "popbridge (A) relative to its peers, per workload (above 1 = popbridge better)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set ylabel "A's advantage (×)"
set yrange [0:*]
set grid ytics
set key top right
set xtics nomirror
set ytics nomirror
# The break-even line.
set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead lw 2 dt 2 lc rgb "#444444" back
plot datafile using 2:xtic(1) title "vs B: Dovecot POP3 over imapc" lc rgb '#2f6db5', \
     ''       using 3         title "vs C: Dovecot POP3 on the Maildir" lc rgb '#e3902c', \
     ''       using ($0 - 1.0/6):2:(sprintf("%.2f", $2)) with labels offset 0,0.7 notitle, \
     ''       using ($0 + 1.0/6):3:(sprintf("%.2f", $3)) with labels offset 0,0.7 notitle
