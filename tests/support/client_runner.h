#pragma once

#include <string>
#include <utility>
#include <vector>

// Runs external programs (real mail clients) from tests: bounded in time, output captured, never
// through a shell, so arguments need no quoting.
namespace popbridge::test {

struct CommandResult {
  int exitCode = -1;  // the exit status, or -1 when killed by a signal or the deadline
  bool timedOut = false;
  std::string output;  // stdout and stderr interleaved, as a user would see them
  // "exit 3: <command line>\n<output>" for failure messages; the output is cut to its tail.
  std::string describe() const;
  std::string commandLine;
};

struct CommandOptions {
  std::vector<std::pair<std::string, std::string>> env;  // set on top of the inherited ones
  std::vector<std::string> unsetEnv;
  std::string workDir;    // empty: the current one
  std::string stdinPath;  // the program's stdin; empty: /dev/null
  int timeoutMs = 60000;
};

// Runs argv (argv[0] is looked up in PATH unless it contains '/') in its own process group with
// stdin from options.stdinPath (a file, never a terminal), else /dev/null. At the deadline the
// whole group gets SIGKILL. Throws std::runtime_error only when the program cannot be started at
// all.
CommandResult runCommand(const std::vector<std::string>& argv, const CommandOptions& options = {});

// A fresh directory under /tmp (mkdtemp), removed with its contents on destruction unless
// PBTEST_KEEP_LOGS is set.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "popbridge-client");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Writes a file (creating or truncating it) with the given mode; throws on failure.
void writeTextFile(const std::string& path, const std::string& content, unsigned mode = 0600);
std::string readWholeFile(const std::string& path);
// Regular files directly inside `dir`, sorted by name; a missing directory gives none.
std::vector<std::string> listFiles(const std::string& dir);

}  // namespace popbridge::test
