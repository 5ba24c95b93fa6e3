// Plexus as a user gets it: `cmake --install` into a staging directory (DESTDIR, as a package is
// built), the prefix then moved somewhere else, and the installed programs run from there.
//
// - The installed plexus-server finds its plugins beside itself (<prefix>/lib/plexus/plugins, the
//   lib dir named as GNUInstallDirs names it) wherever the prefix went, and never the build tree's.
// - A plugin project outside the source tree builds against the moved prefix with
//   find_package(plexus) and plexus_add_plugin, even when it asks for C++14, and the installed
//   server serves it; its unit test, linked with the installed plexus::testing (the in-memory
//   plugin harness), builds and passes.
// - A program built with `pkg-config --cflags --libs plexus` (plexus.pc in the moved prefix) links
//   the installed library and runs.
// - The systemd units and the sample config are installed for the prefix installed to, and the
//   installed server reads that config; installing again keeps a config the user edited.
//
// Every step is a real process (cmake, plexus-server) and every check goes over a loopback socket.

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "integration/child_process.h"
#include "plexus/version.h"
#include "support/test_util.h"

namespace plexus::testing {
namespace {

namespace fs = std::filesystem;
using child::Child;
using std::chrono::milliseconds;

// Generous: under the sanitizers a configure and a compile take a while on a loaded machine.
constexpr milliseconds kCommandTimeout(240000);
constexpr milliseconds kServerTimeout(30000);

// Runs a command to completion; its output goes into the failure message. *out: its stdout.
void run(const std::vector<std::string>& argv, milliseconds timeout = kCommandTimeout,
         std::string* out = nullptr) {
  Child c = Child::spawn(argv, {.pipe_stdin = false});
  ASSERT_TRUE(c.started()) << argv[0];
  child::Outcome o = child::communicate(c, "", timeout);
  std::string command;
  for (const std::string& a : argv) command += a + " ";
  ASSERT_EQ(o.status, 0) << command << "\n" << o.out << o.err;
  if (out != nullptr) *out = o.out;
}

std::string readFile(const fs::path& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Splits a command's output into words at blanks (pkg-config's flags hold no quoted blanks).
std::vector<std::string> words(const std::string& text) {
  std::vector<std::string> out;
  std::string word;
  for (char c : text) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      if (!word.empty()) out.push_back(std::move(word));
      word.clear();
    } else {
      word += c;
    }
  }
  if (!word.empty()) out.push_back(std::move(word));
  return out;
}

// The plugin file names that process `pid` has mapped, as /proc/PID/maps shows them (absolute,
// symlinks resolved).
std::vector<std::string> mappedPlugins(pid_t pid, const std::string& file_name) {
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  std::vector<std::string> found;
  std::string line;
  while (std::getline(maps, line)) {
    size_t slash = line.find('/');
    if (slash == std::string::npos) continue;
    std::string path = line.substr(slash);
    if (fs::path(path).filename() == file_name &&
        (found.empty() || found.back() != path)) {
      found.push_back(path);
    }
  }
  return found;
}

// A plexus-server started with `args`, serving on 127.0.0.1:port once it has logged its start.
class Server {
 public:
  Server(const std::string& program, std::vector<std::string> args) : port_(freePort()) {
    args.insert(args.begin(), {program, "--listen", "127.0.0.1:" + std::to_string(port_),
                               "--threads", "1"});
    child_ = Child::spawn(args, {.pipe_stdin = false, .pipe_stdout = false});
  }
  // Until it logs that it listens (or exits, or the time is up).
  bool waitListening() {
    return child_.started() &&
           child::readUntilContains(child_.err(), &err_, " listening on ", kServerTimeout);
  }
  // Sends `data` and reads as many bytes back, writing and reading at once.
  std::string exchange(const std::string& data) {
    int fd = connectBlocking(InetAddress(port_, /*loopback_only=*/true));
    if (fd < 0) return "(cannot connect)";
    std::thread writer([&] { EXPECT_TRUE(writeAll(fd, data)); });
    std::string reply = readExactly(fd, data.size());
    writer.join();
    ::close(fd);
    return reply;
  }
  int stop() {
    child_.signal(SIGTERM);
    return child_.wait(kServerTimeout);
  }
  pid_t pid() const { return child_.pid(); }
  const std::string& log() const { return err_; }

 private:
  uint16_t port_;
  Child child_;
  std::string err_;
};

class RelocatedInstallTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "plexus_install_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    work_ = fs::canonical(tmpl);
  }
  void TearDown() override {
    if (HasFailure()) {
      std::cerr << "kept for inspection: " << work_.string() << "\n";
      return;
    }
    std::error_code ec;
    fs::remove_all(work_, ec);
  }

  // Installs the build tree as a package build would, under DESTDIR for a prefix that does not
  // exist here, then moves the staged prefix to <work>/moved/plexus. Sets prefix_.
  void installAndMove() {
    const std::string staged_for = kStagedFor;
    ASSERT_NO_FATAL_FAILURE(run({"/usr/bin/env", "DESTDIR=" + (work_ / "stage").string(),
                                 PLEXUS_CMAKE_COMMAND, "--install", PLEXUS_BUILD_ROOT, "--prefix",
                                 staged_for}));
    fs::create_directories(work_ / "moved");
    prefix_ = work_ / "moved" / "plexus";
    fs::rename(work_ / "stage" / fs::path(staged_for).relative_path(), prefix_);
    fs::remove_all(work_ / "stage");
    ASSERT_TRUE(fs::is_regular_file(prefix_ / "bin" / "plexus-server"));
    ASSERT_TRUE(fs::is_regular_file(pluginDir() / "echo.so"));
  }

  fs::path server() const { return prefix_ / "bin" / "plexus-server"; }
  // Where the install was staged for, before the move: what the units name.
  static constexpr const char* kStagedFor = "/nonexistent/plexus-prefix";
  fs::path pluginDir() const { return prefix_ / PLEXUS_INSTALL_LIBDIR / "plexus" / "plugins"; }

  fs::path work_;
  fs::path prefix_;
};

TEST_F(RelocatedInstallTest, ServerFindsItsPluginsBesideItself) {
  ASSERT_NO_FATAL_FAILURE(installAndMove());

  // --help names the moved prefix's plugin dir as the default, and nothing of the build tree.
  Child help_process = Child::spawn({server().string(), "--help"}, {.pipe_stdin = false});
  child::Outcome help = child::communicate(help_process, "", kServerTimeout);
  ASSERT_EQ(help.status, 0) << help.err;
  EXPECT_NE(help.out.find(pluginDir().string()), std::string::npos) << help.out;
  EXPECT_EQ(help.out.find(PLEXUS_BUILD_ROOT), std::string::npos) << help.out;

  // What it searches for a name it cannot find: --plugin-dir first, then its own plugin dir.
  Child missing_process = Child::spawn(
      {server().string(), "--plugin", "nope", "--plugin-dir", "/no/such/dir"},
      {.pipe_stdin = false});
  child::Outcome missing = child::communicate(missing_process, "", kServerTimeout);
  EXPECT_EQ(missing.status, 2);
  EXPECT_EQ(missing.err, "plexus-server: error: plugin 'nope' not found (searched: /no/such/dir, " +
                             pluginDir().string() + ")\n");

  // `--plugin echo` loads the installed echo.so (not the build tree's) and echoes bytes exactly.
  Server echo(server().string(), {"--plugin", "echo"});
  ASSERT_TRUE(echo.waitListening()) << echo.log();
  EXPECT_EQ(mappedPlugins(echo.pid(), "echo.so"),
            std::vector<std::string>{(pluginDir() / "echo.so").string()});
  const std::string text = "hello from a moved prefix\n";
  EXPECT_EQ(echo.exchange(text), text);
  const std::string binary = randomBytes(1 << 20, 91);
  EXPECT_TRUE(echo.exchange(binary) == binary) << "1 MiB of random bytes did not come back as sent";
  EXPECT_EQ(echo.stop(), 0) << echo.log();
}

// The README's recipe ("Writing a plugin"), step by step.
TEST_F(RelocatedInstallTest, BuildsAnOutOfTreePluginAndServesIt) {
  ASSERT_NO_FATAL_FAILURE(installAndMove());

  // A copy of examples/plugin outside the source tree, so nothing can reach back into it.
  const fs::path source = work_ / "upper";
  fs::copy(fs::path(PLEXUS_SOURCE_DIR) / "examples" / "plugin", source,
           fs::copy_options::recursive);
  const fs::path build = source / "build";

  std::vector<std::string> configure = {
      PLEXUS_CMAKE_COMMAND, "-S", source.string(), "-B", build.string(),
      "-DCMAKE_PREFIX_PATH=" + prefix_.string(),
      // Asks for less than Plexus needs: plexus::framework must raise it to C++20.
      "-DCMAKE_CXX_STANDARD=14",
      // The toolchain of this build, so that the plugin matches the server.
      "-G", PLEXUS_CMAKE_GENERATOR, "-DCMAKE_CXX_COMPILER=" PLEXUS_CXX_COMPILER,
      "-DCMAKE_BUILD_TYPE=" PLEXUS_BUILD_TYPE};
  if (std::string(PLEXUS_SANITIZE).size() > 0) {
    // The installed framework is instrumented: the plugin is built with the same sanitizers.
    const std::string flags = "-fsanitize=" PLEXUS_SANITIZE;
    configure.push_back("-DCMAKE_CXX_FLAGS=" + flags);
    configure.push_back("-DCMAKE_MODULE_LINKER_FLAGS=" + flags);
    configure.push_back("-DCMAKE_EXE_LINKER_FLAGS=" + flags);
  }
  if (std::string(PLEXUS_CXX_LAUNCHER).size() > 0) {
    configure.push_back("-DCMAKE_CXX_COMPILER_LAUNCHER=" PLEXUS_CXX_LAUNCHER);
  }
  ASSERT_NO_FATAL_FAILURE(run(configure));
  ASSERT_NO_FATAL_FAILURE(run({PLEXUS_CMAKE_COMMAND, "--build", build.string()}));
  ASSERT_TRUE(fs::is_regular_file(build / "upper.so"));  // NAME.so, no "lib" in front

  // Its unit test, against the installed plexus::testing (GoogleTest is installed wherever Plexus's
  // own tests build), loads the plugin in memory and passes.
  ASSERT_TRUE(fs::is_regular_file(build / "upper_test")) << "plexus::testing consumer not built";
  ASSERT_NO_FATAL_FAILURE(run({(build / "upper_test").string()}));

  const std::string text = "Hello, plugin World! 123\n";
  const std::string upper = "HELLO, PLUGIN WORLD! 123\n";
  std::string binary = randomBytes(256 * 1024, 92);
  std::string binary_upper = binary;
  for (char& c : binary_upper) c = (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;

  // By path, straight from the plugin's build directory.
  {
    Server s(server().string(), {"--plugin", (build / "upper.so").string()});
    ASSERT_TRUE(s.waitListening()) << s.log();
    EXPECT_NE(s.log().find("plugin upper"), std::string::npos) << s.log();
    EXPECT_EQ(s.exchange(text), upper);
    EXPECT_TRUE(s.exchange(binary) == binary_upper) << "256 KiB of random bytes came back wrong";
    EXPECT_EQ(s.stop(), 0) << s.log();
  }

  // Installed into a prefix of its own, and found there by name through --plugin-dir. (Configured
  // for the default prefix, /usr/local, GNUInstallDirs names the lib dir "lib".)
  const fs::path plugin_prefix = work_ / "plugin-prefix";
  ASSERT_NO_FATAL_FAILURE(
      run({PLEXUS_CMAKE_COMMAND, "--install", build.string(), "--prefix", plugin_prefix.string()}));
  const fs::path installed = plugin_prefix / "lib" / "plexus" / "plugins" / "upper.so";
  ASSERT_TRUE(fs::is_regular_file(installed)) << installed;
  {
    Server s(server().string(),
             {"--plugin", "upper", "--plugin-dir", installed.parent_path().string()});
    ASSERT_TRUE(s.waitListening()) << s.log();
    EXPECT_EQ(mappedPlugins(s.pid(), "upper.so"), std::vector<std::string>{installed.string()});
    EXPECT_EQ(s.exchange(text), upper);
    EXPECT_EQ(s.stop(), 0) << s.log();
  }
}

// plexus.pc: a program compiled and linked with nothing but `pkg-config --cflags --libs plexus`
// (the moved prefix's, found through PKG_CONFIG_PATH) runs against the installed library.
TEST_F(RelocatedInstallTest, BuildsAProgramThroughPkgConfig) {
  ASSERT_NO_FATAL_FAILURE(installAndMove());
  const fs::path pc_dir = prefix_ / PLEXUS_INSTALL_LIBDIR / "pkgconfig";
  ASSERT_TRUE(fs::is_regular_file(pc_dir / "plexus.pc"));
  std::string flags;
  ASSERT_NO_FATAL_FAILURE(run({"/usr/bin/env", "PKG_CONFIG_PATH=" + pc_dir.string(), "pkg-config",
                               "--cflags", "--libs", "plexus"},
                              kCommandTimeout, &flags));
  // Nothing of the build or source tree: only the moved prefix (and the system's Abseil).
  EXPECT_EQ(flags.find(PLEXUS_BUILD_ROOT), std::string::npos) << flags;
  EXPECT_EQ(flags.find(PLEXUS_SOURCE_DIR), std::string::npos) << flags;
  EXPECT_NE(flags.find("-lplexus"), std::string::npos) << flags;
  std::string version;
  ASSERT_NO_FATAL_FAILURE(run({"/usr/bin/env", "PKG_CONFIG_PATH=" + pc_dir.string(), "pkg-config",
                               "--modversion", "plexus"},
                              kCommandTimeout, &version));
  EXPECT_EQ(version, PLEXUS_VERSION_STRING "\n");

  const fs::path source = work_ / "hello.cc";
  std::ofstream(source) << R"(#include <cstdio>
#include "plexus/inet_address.h"
#include "plexus/version.h"
int main() {
  auto addr = plexus::InetAddress::fromIp("127.0.0.1", 7000);
  auto bad = plexus::InetAddress::fromIp("not an address", 7000);
  std::printf("%s %s %s\n", plexus::kVersion, addr.ok() ? addr->toIpPort().c_str() : "?",
              bad.ok() ? "parsed" : "refused");
}
)";
  const fs::path program = work_ / "hello";
  std::vector<std::string> compile = {PLEXUS_CXX_COMPILER, source.string(), "-o", program.string()};
  if (std::string(PLEXUS_SANITIZE).size() > 0) compile.push_back("-fsanitize=" PLEXUS_SANITIZE);
  for (std::string& w : words(flags)) compile.push_back(std::move(w));
  compile.push_back("-Wl,-rpath," + (prefix_ / PLEXUS_INSTALL_LIBDIR).string());
  ASSERT_NO_FATAL_FAILURE(run(compile));
  std::string out;
  ASSERT_NO_FATAL_FAILURE(run({program.string()}, kCommandTimeout, &out));
  EXPECT_EQ(out, PLEXUS_VERSION_STRING " 127.0.0.1:7000 refused\n");
}

// The systemd units name the server and config of the prefix installed to; the sample config is
// there and the installed server reads it.
TEST_F(RelocatedInstallTest, InstallsSystemdUnitsAndTheSampleConfig) {
  ASSERT_NO_FATAL_FAILURE(installAndMove());
  const fs::path units = prefix_ / "lib" / "systemd" / "system";
  const std::string service = readFile(units / "plexus-server.service");
  const std::string staged = kStagedFor;
  EXPECT_NE(service.find("\nExecStart=" + staged + "/bin/plexus-server --config " + staged +
                         "/etc/plexus/plexus-server.conf\n"),
            std::string::npos)
      << service;
  EXPECT_NE(service.find("\nType=notify\n"), std::string::npos) << service;
  EXPECT_NE(service.find("\nExecReload=/bin/kill -HUP $MAINPID\n"), std::string::npos);
  EXPECT_TRUE(fs::is_regular_file(units / "plexus-server.socket"));

  const fs::path config = prefix_ / "etc" / "plexus" / "plexus-server.conf";
  ASSERT_TRUE(fs::is_regular_file(config));
  Server s(server().string(), {"--config", config.string()});
  ASSERT_TRUE(s.waitListening()) << s.log();
  EXPECT_NE(s.log().find("plugin echo"), std::string::npos) << s.log();
  EXPECT_EQ(s.exchange("configured\n"), "configured\n");
  EXPECT_EQ(s.stop(), 0) << s.log();
}

// `cmake --install` again over an installed prefix keeps a config the user edited.
TEST_F(RelocatedInstallTest, ReinstallKeepsAnEditedConfig) {
  const fs::path prefix = work_ / "prefix";
  ASSERT_NO_FATAL_FAILURE(
      run({PLEXUS_CMAKE_COMMAND, "--install", PLEXUS_BUILD_ROOT, "--prefix", prefix.string()}));
  const fs::path config = prefix / "etc" / "plexus" / "plexus-server.conf";
  ASSERT_TRUE(fs::is_regular_file(config));
  EXPECT_EQ(readFile(config),
            readFile(fs::path(PLEXUS_SOURCE_DIR) / "deploy" / "plexus-server.conf"));
  std::ofstream(config) << "port = 7000\n";
  ASSERT_NO_FATAL_FAILURE(
      run({PLEXUS_CMAKE_COMMAND, "--install", PLEXUS_BUILD_ROOT, "--prefix", prefix.string()}));
  EXPECT_EQ(readFile(config), "port = 7000\n");
  // The units name this prefix.
  const std::string service = readFile(prefix / "lib" / "systemd" / "system" /
                                       "plexus-server.service");
  EXPECT_NE(service.find("\nExecStart=" + (prefix / "bin" / "plexus-server").string() +
                         " --config " + config.string() + "\n"),
            std::string::npos)
      << service;
}

}  // namespace
}  // namespace plexus::testing
