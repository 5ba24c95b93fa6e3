// plugin_loader: finding, loading and checking plugins, and each of its error messages.

#include "plexus/plugin_loader.h"

#include <dlfcn.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "plexus/buffer.h"

namespace plexus {
namespace {

namespace fs = std::filesystem;

const std::string kPluginDir = PLEXUS_PLUGIN_DIR;
const std::string kTestPluginDir = PLEXUS_TEST_PLUGIN_DIR;

std::string canonical(const std::string& path) { return fs::weakly_canonical(path).string(); }

// A scratch directory, removed afterwards.
class PluginLoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "plexus_loader_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    scratch_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(scratch_, ec);
  }
  std::string writeFile(const std::string& name, const std::string& contents) {
    std::string path = scratch_ + "/" + name;
    std::ofstream(path) << contents;
    return path;
  }

  std::string scratch_;
};

TEST_F(PluginLoaderTest, LoadsEchoByName) {
  auto plugin = loadPlugin("echo", {kPluginDir});
  ASSERT_TRUE(plugin.ok()) << plugin.status();
  EXPECT_EQ((*plugin)->name(), "echo");
  EXPECT_EQ((*plugin)->description(), "byte-exact echo of everything received");
  EXPECT_EQ(canonical((*plugin)->path()), canonical(kPluginDir + "/echo.so"));
  ASSERT_NE((*plugin)->factory(), nullptr);
  EXPECT_NE((*plugin)->factory()->newHandler(LoopInfo{}), nullptr);
}

TEST_F(PluginLoaderTest, LoadsEchoByPath) {
  auto plugin = loadPlugin(kPluginDir + "/echo.so", {});
  ASSERT_TRUE(plugin.ok()) << plugin.status();
  EXPECT_EQ((*plugin)->name(), "echo");
  EXPECT_TRUE(fs::path((*plugin)->path()).is_absolute());
}

TEST_F(PluginLoaderTest, SearchesDirectoriesInOrder) {
  // A bad file named echo.so in the first directory is found (and refused) before the real one.
  auto plugin = loadPlugin("echo", {scratch_ + "/missing", kPluginDir, scratch_});
  ASSERT_TRUE(plugin.ok()) << plugin.status();
  EXPECT_EQ(canonical((*plugin)->path()), canonical(kPluginDir + "/echo.so"));

  writeFile("echo.so", "not a plugin\n");
  auto shadowed = loadPlugin("echo", {scratch_, kPluginDir});
  EXPECT_FALSE(shadowed.ok());
  EXPECT_NE(std::string(shadowed.status().message()).find(scratch_ + "/echo.so"), std::string::npos)
      << shadowed.status();
}

TEST_F(PluginLoaderTest, DefaultDirsStartWithTheBuildTree) {
  std::vector<std::string> dirs = defaultPluginDirs();
  ASSERT_FALSE(dirs.empty());
  EXPECT_EQ(canonical(dirs.front()), canonical(kPluginDir));
  auto plugin = loadPlugin("echo", dirs);
  EXPECT_TRUE(plugin.ok()) << plugin.status();
}

TEST_F(PluginLoaderTest, NameNotFoundListsTheDirectories) {
  auto plugin = loadPlugin("nope", {"/no/such/dir", kPluginDir});
  ASSERT_FALSE(plugin.ok());
  EXPECT_EQ(plugin.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(plugin.status().message(),
            "plugin 'nope' not found (searched: /no/such/dir, " + kPluginDir + ")");
}

TEST_F(PluginLoaderTest, PathNotFound) {
  auto plugin = loadPlugin(scratch_ + "/none.so", {kPluginDir});
  ASSERT_FALSE(plugin.ok());
  EXPECT_EQ(plugin.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(plugin.status().message(),
            "plugin '" + scratch_ + "/none.so' not found (no such file)");
}

TEST_F(PluginLoaderTest, EmptyNameIsAnError) { EXPECT_FALSE(loadPlugin("", {kPluginDir}).ok()); }

TEST_F(PluginLoaderTest, TextFileIsNotLoadable) {
  std::string path = writeFile("x.so", "just some text, not ELF\n");
  auto plugin = loadPlugin(path, {});
  ASSERT_FALSE(plugin.ok());
  const std::string message(plugin.status().message());
  const std::string prefix = "'" + path + "' is not a loadable shared object: ";
  EXPECT_EQ(message.rfind(prefix, 0), 0u) << message;
  EXPECT_GT(message.size(), prefix.size()) << "no dlerror text: " << message;
  EXPECT_EQ(message.find('\n'), std::string::npos);
}

TEST_F(PluginLoaderTest, SharedObjectWithoutDescriptor) {
  const std::string path = kTestPluginDir + "/nosymbol.so";
  auto plugin = loadPlugin(path, {});
  ASSERT_FALSE(plugin.ok());
  EXPECT_EQ(plugin.status().message(),
            "'" + path + "' has no plexus_plugin_descriptor symbol (not a Plexus plugin)");
}

TEST_F(PluginLoaderTest, ApiVersionMismatch) {
  auto plugin = loadPlugin("badversion", {kTestPluginDir});
  ASSERT_FALSE(plugin.ok());
  EXPECT_EQ(plugin.status().message(),
            "plugin 'badversion' was built for plugin API version 999, this server has version 4");
}

TEST_F(PluginLoaderTest, PluginApiVersionOneIsRefusedByItsVersion) {
  // Its descriptor is shorter and laid out differently: nothing past api_version may be read.
  auto plugin = loadPlugin("apiv1", {kTestPluginDir});
  ASSERT_FALSE(plugin.ok());
  EXPECT_EQ(plugin.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(plugin.status().message(),
            "plugin 'apiv1' was built for plugin API version 1, this server has version 4");
}

TEST_F(PluginLoaderTest, PluginApiVersionTwoIsRefusedByItsVersion) {
  // Same descriptor layout as version 3, older handler and session classes.
  auto plugin = loadPlugin("apiv2", {kTestPluginDir});
  ASSERT_FALSE(plugin.ok());
  EXPECT_EQ(plugin.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(plugin.status().message(),
            "plugin 'apiv2' was built for plugin API version 2, this server has version 4");
}

TEST_F(PluginLoaderTest, PluginApiVersionThreeStillLoads) {
  // Version 4 only added LoopInfo::metrics at the end, which a version 3 plugin never reads.
  auto plugin = loadPlugin("apiv3", {kTestPluginDir});
  ASSERT_TRUE(plugin.ok()) << plugin.status();
  EXPECT_EQ((*plugin)->name(), "apiv3");
  EXPECT_NE((*plugin)->factory()->newHandler(LoopInfo{}), nullptr);
}

TEST_F(PluginLoaderTest, AnotherCompilerWithTheSameLibraryLoads) {
  auto plugin = loadPlugin("othercompiler", {kTestPluginDir});
  ASSERT_TRUE(plugin.ok()) << plugin.status();
  EXPECT_EQ((*plugin)->name(), "othercompiler");
  EXPECT_NE((*plugin)->factory()->newHandler(LoopInfo{}), nullptr);
}

TEST_F(PluginLoaderTest, PluginsBuiltHereCarryThisBuildsSignature) {
  // echo and testproto, built like the server, load (the other tests use them too); their
  // signature is the one this test is compiled with.
  for (const char* name : {"echo", "testproto"}) {
    const std::string dir = std::string(name) == "echo" ? kPluginDir : kTestPluginDir;
    auto plugin = loadPlugin(name, {dir});
    ASSERT_TRUE(plugin.ok()) << plugin.status();
    // The exported symbol is a `const void*` holding the descriptor's address (BOOST_DLL_ALIAS).
    void* handle = ::dlopen((*plugin)->path().c_str(), RTLD_NOW | RTLD_NOLOAD);
    ASSERT_NE(handle, nullptr) << name;
    void* symbol = ::dlsym(handle, kPluginDescriptorSymbol);
    ASSERT_NE(symbol, nullptr) << name;
    const auto* descriptor = static_cast<const PluginDescriptor*>(*static_cast<void**>(symbol));
    constexpr PluginBuildSignature kHere = currentBuildSignature();
    EXPECT_EQ(descriptor->api_version, kPluginApiVersion);
    EXPECT_EQ(std::memcmp(&descriptor->build, &kHere, sizeof kHere), 0) << name;
    EXPECT_EQ(descriptor->build.string_size, sizeof(std::string));
    EXPECT_EQ(descriptor->build.args_size, sizeof(PluginArgs));
    ::dlclose(handle);
  }
}

#ifdef __GLIBCXX__
// The build signature as the loader writes it, for libstdc++ and this test's compiler.
std::string libstdcxxSignature(int cxx11_abi, bool debug_mode, size_t string_size,
                               size_t args_size) {
#if defined(__clang__)
  std::string compiler = "clang " + std::to_string(__clang_major__);
#else
  std::string compiler = "gcc " + std::to_string(__GNUC__);
#endif
  return compiler + ", libstdc++ _GLIBCXX_USE_CXX11_ABI=" + std::to_string(cxx11_abi) +
         (debug_mode ? " _GLIBCXX_DEBUG" : "") + ", std::string " + std::to_string(string_size) +
         " bytes, PluginArgs " + std::to_string(args_size) + " bytes";
}

const std::string kServerSignature =
    libstdcxxSignature(1, false, sizeof(std::string), sizeof(PluginArgs));

TEST_F(PluginLoaderTest, RefusesThePreCxx11StringAbi) {
  ASSERT_EQ(_GLIBCXX_USE_CXX11_ABI, 1) << "these tests expect the server built with the new ABI";
  auto plugin = loadPlugin("oldabi", {kTestPluginDir});
  ASSERT_FALSE(plugin.ok());
  EXPECT_EQ(plugin.status().code(), absl::StatusCode::kFailedPrecondition);
  // The old ABI's std::string is one pointer; its std::map has the same size, not the same nodes.
  EXPECT_EQ(plugin.status().message(),
            "plugin 'oldabi' was built with (" +
                libstdcxxSignature(0, false, sizeof(void*), sizeof(PluginArgs)) +
                "), this server with (" + kServerSignature + ")");
}

TEST_F(PluginLoaderTest, RefusesLibstdcxxDebugMode) {
  auto plugin = loadPlugin("debugmode", {kTestPluginDir});
  ASSERT_FALSE(plugin.ok());
  EXPECT_EQ(plugin.status().code(), absl::StatusCode::kFailedPrecondition);
  // Debug mode's std::map is bigger (how much bigger depends on the libstdc++ version).
  const std::string message(plugin.status().message());
  const std::string debug = libstdcxxSignature(1, true, sizeof(std::string), 0);
  const std::string head = "plugin 'debugmode' was built with (" +
                           debug.substr(0, debug.size() - std::string("0 bytes").size());
  const std::string tail = " bytes), this server with (" + kServerSignature + ")";
  EXPECT_EQ(message.rfind(head, 0), 0u) << message;
  ASSERT_GE(message.size(), head.size() + tail.size()) << message;
  EXPECT_EQ(message.substr(message.size() - tail.size()), tail) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos);
}
#endif  // __GLIBCXX__

TEST_F(PluginLoaderTest, FactoryRejectingItsArguments) {
  auto plugin = loadPlugin("testproto", {kTestPluginDir}, {{"reject", "no thanks"}});
  ASSERT_FALSE(plugin.ok());
  EXPECT_EQ(plugin.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(plugin.status().message(), "plugin 'testproto' rejected its arguments: no thanks");

  auto unknown = loadPlugin("testproto", {kTestPluginDir}, {{"colour", "blue"}});
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().message(),
            "plugin 'testproto' rejected its arguments: unknown argument 'colour'");

  auto echo = loadPlugin("echo", {kPluginDir}, {{"x", "1"}});
  ASSERT_FALSE(echo.ok());
  EXPECT_EQ(echo.status().message(),
            "plugin 'echo' rejected its arguments: echo takes no arguments, got 'x'");
}

TEST_F(PluginLoaderTest, FactoryKeepsTheLibraryLoaded) {
  const std::string path = canonical(kPluginDir + "/echo.so");
  std::shared_ptr<PluginFactory> factory;
  {
    auto plugin = loadPlugin(path, {});
    ASSERT_TRUE(plugin.ok()) << plugin.status();
    factory = (*plugin)->factory();
  }
  // The LoadedPlugin is gone; the factory still works, and its code is still mapped.
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD);
  ASSERT_NE(handle, nullptr) << "echo.so was unloaded while its factory lives";
  ::dlclose(handle);
  std::unique_ptr<ProtocolHandler> handler = factory->newHandler(LoopInfo{});
  ASSERT_NE(handler, nullptr);
  handler.reset();
  factory.reset();
}

TEST_F(PluginLoaderTest, LoadingTwiceGivesIndependentPlugins) {
  auto a = loadPlugin("testproto", {kTestPluginDir}, {{"greeting", "a"}});
  auto b = loadPlugin("testproto", {kTestPluginDir}, {{"greeting", "b"}});
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  a->reset();
  EXPECT_NE((*b)->factory()->newHandler(LoopInfo{}), nullptr);
}

}  // namespace
}  // namespace plexus
