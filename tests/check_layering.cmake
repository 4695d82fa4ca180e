# Fails when a pure layer includes an I/O or TLS header, or when protocol/
# reaches into config/ (config produces protocol's types, never the reverse).
# Inside protocol/, the POP3 server knows only its maildrop interface and the
# IMAP client knows neither POP3 nor the bridge that joins them.
function(check_includes glob regex why)
  file(GLOB_RECURSE files ${ROOT}/${glob})
  foreach(f IN LISTS files)
    file(STRINGS ${f} hits REGEX "#include[ \t]*[<\"](${regex})")
    if(hits)
      message(FATAL_ERROR "${f} breaks the layering rule (${why}): ${hits}")
    endif()
  endforeach()
endfunction()

foreach(dir protocol config)
  check_includes("${dir}/*.[hc]*" "uv\\.h|sys/socket\\.h|netinet/|proxy/" "${dir}/ is pure")
endforeach()
# libcrypto's hash functions are pure; nothing else of BoringSSL (TLS, BIO, X.509) belongs here.
check_includes("protocol/*.[hc]*" "openssl/([^s]|s[^h]|sh[^a]|sha[^.])" "protocol/ takes only hashes from libcrypto")
check_includes("config/*.[hc]*" "openssl/" "config/ is pure")
check_includes("protocol/*.[hc]*" "config/" "protocol/ never includes config/")
check_includes("protocol/pop3/*.[hc]*" "protocol/imap/|protocol/bridge/" "the POP3 server knows only the maildrop")
check_includes("protocol/imap/*.[hc]*" "protocol/pop3/|protocol/bridge/" "the IMAP client knows nothing of POP3")
message(STATUS "layering: pure layers, one-way protocol/ dependencies")
