#include "plexus/plugin_loader.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <boost/dll/shared_library.hpp>
#include <cerrno>
#include <cstring>
#include <exception>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "plexus/log.h"

namespace plexus {

namespace fs = std::filesystem;

// A loaded shared object. A plugin loaded from a private copy (see loadFile) keeps the copy's fd
// open while it is loaded: the copy is known to the dynamic linker by the name /proc/self/fd/N,
// and a second copy must not get the same N while the first is still loaded.
struct LoadedPlugin::Library {
  Library() = default;
  Library(const Library&) = delete;
  Library& operator=(const Library&) = delete;
  ~Library() {
    if (!lib.is_loaded()) return;
    lib.unload();  // dlclose: the last reference unmaps it
    // A library with STB_GNU_UNIQUE symbols is never unloaded (glibc marks it NODELETE): say so
    // once, as each reload then keeps another copy in memory.
    static std::atomic<bool> told{false};
    if (loaded(load_path) && !told.exchange(true)) {
      LOG_WARN("plugin '%s' stays loaded after its last use (it has STB_GNU_UNIQUE symbols: "
               "build it with -fno-gnu-unique, as plexus_add_plugin does); each reload keeps "
               "another copy in memory",
               path);
    }
    if (copy_fd >= 0) ::close(copy_fd);
  }
  static bool loaded(const std::string& name) {
    void* handle = ::dlopen(name.c_str(), RTLD_LAZY | RTLD_NOLOAD);
    if (handle == nullptr) return false;
    ::dlclose(handle);  // RTLD_NOLOAD took a reference too
    return true;
  }
  boost::dll::shared_library lib;
  std::string path;       // the user's
  std::string load_path;  // what dlopen was given: `path`, or the copy's /proc/self/fd/N
  int copy_fd = -1;
};

LoadedPlugin::LoadedPlugin(std::shared_ptr<Library> library, std::string name,
                           std::string description, std::string path,
                           std::shared_ptr<PluginFactory> factory)
    : library_(std::move(library)),
      name_(std::move(name)),
      description_(std::move(description)),
      path_(std::move(path)),
      factory_(std::move(factory)) {}

LoadedPlugin::~LoadedPlugin() = default;

namespace {

bool isPath(std::string_view name_or_path) {
  return name_or_path.find('/') != std::string_view::npos || name_or_path.ends_with(".so");
}

bool isFile(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);  // follows symlinks
}

// This library's build, which plexus-server shares (they are built together).
constexpr PluginBuildSignature kServerBuild = currentBuildSignature();

// Whether a plugin built as `plugin` may exchange C++ objects with a server built as `server`.
// Across the boundary go a PluginArgs (std::map of std::string) by reference, std::unique_ptr
// results, std::string_view and Buffer arguments, classes with virtual functions and the exceptions
// create() throws:
//   - The standard library, its ABI (libstdc++'s dual ABI: the old std::string is one pointer, the
//     C++11 one 32 bytes; libc++'s ABI version) and libstdc++'s debug mode decide how std::string,
//     std::map and the other containers are laid out, so any difference is refused. The sizes of
//     std::string and PluginArgs catch whatever else changes those layouts.
//   - The compiler and its version are only reported, not compared: GCC and Clang both follow the
//     Itanium C++ ABI on Linux (vtables, mangling, exceptions, argument passing), and libstdc++ keeps
//     its ABI across GCC versions (the C++11 one since GCC 5). A plugin that needs a newer libstdc++
//     than the server's fails earlier, in dlopen, naming the missing GLIBCXX_ symbol version.
//   - The pointer size is not recorded: dlopen refuses a shared object of another ELF class.
bool compatible(const PluginBuildSignature& plugin, const PluginBuildSignature& server) {
  return plugin.library == server.library && plugin.library_abi == server.library_abi &&
         plugin.library_debug == server.library_debug &&
         plugin.string_size == server.string_size && plugin.args_size == server.args_size;
}

// "gcc 12, libstdc++ _GLIBCXX_USE_CXX11_ABI=1, std::string 32 bytes, PluginArgs 48 bytes"
std::string describe(const PluginBuildSignature& s) {
  std::string text;
  switch (s.compiler) {
    case PluginBuildSignature::kGcc:
      text = absl::StrFormat("gcc %u", s.compiler_major);
      break;
    case PluginBuildSignature::kClang:
      text = absl::StrFormat("clang %u", s.compiler_major);
      break;
    default:
      text = "unknown compiler";
  }
  switch (s.library) {
    case PluginBuildSignature::kLibstdcxx:
      absl::StrAppendFormat(&text, ", libstdc++ _GLIBCXX_USE_CXX11_ABI=%u%s", s.library_abi,
                            s.library_debug ? " _GLIBCXX_DEBUG" : "");
      break;
    case PluginBuildSignature::kLibcxx:
      absl::StrAppendFormat(&text, ", libc++ ABI %u", s.library_abi);
      break;
    default:
      text += ", unknown standard library";
  }
  absl::StrAppendFormat(&text, ", std::string %u bytes, PluginArgs %u bytes", s.string_size,
                        s.args_size);
  return text;
}

// Whether the dynamic linker has a library loaded under `name` (which dlopen would hand back
// instead of reading the file again).
bool alreadyLoaded(const std::string& name) { return LoadedPlugin::Library::loaded(name); }

std::string fdPath(int fd) { return absl::StrFormat("/proc/self/fd/%d", fd); }

// A private copy of `path` in memory (memfd), for loading a file whose path is already loaded: a
// plugin rebuilt in place and reloaded. dlopen of the same path would return the library already
// loaded; a copy is a library of its own, with its own statics, unloaded when its last reference
// goes. Returns the copy's fd, under a /proc/self/fd name no loaded library has.
absl::StatusOr<int> privateCopy(const std::string& path) {
  const int in = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) {
    return absl::FailedPreconditionError(
        absl::StrFormat("cannot read '%s': %s", path, std::strerror(errno)));
  }
  int copy = ::memfd_create(fs::path(path).filename().c_str(), MFD_CLOEXEC);
  if (copy < 0) {
    const int err = errno;
    ::close(in);
    return absl::FailedPreconditionError(
        absl::StrFormat("cannot copy '%s' to load it again: memfd_create: %s", path,
                        std::strerror(err)));
  }
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(in, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(in);
      ::close(copy);
      return absl::FailedPreconditionError(
          absl::StrFormat("cannot read '%s': %s", path, std::strerror(err)));
    }
    if (n == 0) break;
    for (ssize_t done = 0; done < n;) {
      ssize_t w = ::write(copy, buf + done, static_cast<size_t>(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        const int err = errno;
        ::close(in);
        ::close(copy);
        return absl::FailedPreconditionError(absl::StrFormat(
            "cannot copy '%s' to load it again: %s", path, std::strerror(err)));
      }
      done += w;
    }
  }
  ::close(in);
  // A library that could not be unloaded (e.g. one with STB_GNU_UNIQUE symbols) may still be
  // known as this fd's name, from a copy whose fd was closed: move the copy to a name nobody has.
  std::vector<int> taken;
  while (alreadyLoaded(fdPath(copy))) {
    const int moved = ::fcntl(copy, F_DUPFD_CLOEXEC, copy + 1);
    taken.push_back(copy);
    if (moved < 0) {
      const int err = errno;
      for (int fd : taken) ::close(fd);
      return absl::FailedPreconditionError(
          absl::StrFormat("cannot copy '%s' to load it again: %s", path, std::strerror(err)));
    }
    copy = moved;
  }
  for (int fd : taken) ::close(fd);
  return copy;
}

absl::StatusOr<std::shared_ptr<LoadedPlugin>> loadFile(std::string_view requested,
                                                       const fs::path& file,
                                                       const PluginArgs& args) {
  std::error_code ec;
  fs::path abs = fs::absolute(file, ec);
  if (ec) abs = file;
  const std::string path = abs.lexically_normal().string();

  auto library = std::make_shared<LoadedPlugin::Library>();
  // The path itself, or a private copy when that path is loaded already (a reload).
  std::string load_path = path;
  if (alreadyLoaded(path)) {
    auto copy = privateCopy(path);
    if (!copy.ok()) return copy.status();
    library->copy_fd = *copy;
    load_path = fdPath(*copy);
  }
  library->path = path;
  library->load_path = load_path;
  boost::dll::fs::error_code load_ec;
  // RTLD_NOW: an unresolved symbol fails here, not in the middle of serving. RTLD_LOCAL: plugins'
  // own symbols stay out of the global namespace, so two plugins never resolve to each other.
  library->lib.load(load_path, load_ec,
                    boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  if (load_ec || !library->lib.is_loaded()) {
    // Boost.DLL keeps dlerror()'s text after a failed load; it says why much better than errc.
    // It names what was opened: the user's path, never the copy's.
    const char* why = ::dlerror();
    std::string text = why ? std::string(why) : load_ec.message();
    if (load_path != path) text = absl::StrReplaceAll(text, {{load_path, path}});
    return absl::FailedPreconditionError(
        absl::StrFormat("'%s' is not a loadable shared object: %s", path, text));
  }

  if (!library->lib.has(kPluginDescriptorSymbol)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "'%s' has no %s symbol (not a Plexus plugin)", path, kPluginDescriptorSymbol));
  }
  // BOOST_DLL_ALIAS exports a `const void*` holding the descriptor's address (what get_alias
  // reads).
  const void* exported = library->lib.get<const void*>(kPluginDescriptorSymbol);
  if (exported == nullptr) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "'%s' has a null %s symbol (not a Plexus plugin)", path, kPluginDescriptorSymbol));
  }
  // api_version is the only field whose place every version agrees on: read it alone (a version 1
  // descriptor is shorter than this version's) and check it before anything else.
  uint32_t api_version = 0;
  std::memcpy(&api_version, exported, sizeof api_version);
  if (api_version < kPluginApiOldestVersion || api_version > kPluginApiVersion) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "plugin '%s' was built for plugin API version %u, this server has version %u", requested,
        api_version, kPluginApiVersion));
  }
  const auto* descriptor = static_cast<const PluginDescriptor*>(exported);
  // Then the build: nothing of the plugin's runs, and no C++ object is handed to it, before this.
  if (!compatible(descriptor->build, kServerBuild)) {
    return absl::FailedPreconditionError(
        absl::StrFormat("plugin '%s' was built with (%s), this server with (%s)", requested,
                        describe(descriptor->build), describe(kServerBuild)));
  }
  if (descriptor->create == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrFormat("plugin '%s' has no create function", requested));
  }
  std::string name = descriptor->name ? descriptor->name : std::string(requested);
  std::string description = descriptor->description ? descriptor->description : "";

  std::unique_ptr<PluginFactory> made;
  try {
    made = descriptor->create(args);
  } catch (const std::exception& e) {
    // Copy the text out now: the exception object's code lives in the library.
    return absl::InvalidArgumentError(
        absl::StrFormat("plugin '%s' rejected its arguments: %s", name, e.what()));
  } catch (...) {
    return absl::InvalidArgumentError(
        absl::StrFormat("plugin '%s' rejected its arguments: unknown exception", name));
  }
  if (!made) {
    return absl::FailedPreconditionError(
        absl::StrFormat("plugin '%s' made no factory (create returned null)", name));
  }

  // The factory's deleter owns a reference to the library: the factory's destructor (code in the
  // library) runs before the library can be unloaded, whoever drops the factory last.
  std::shared_ptr<PluginFactory> factory(made.release(), [library](PluginFactory* f) { delete f; });
  return std::make_shared<LoadedPlugin>(std::move(library), std::move(name), std::move(description),
                                        path, std::move(factory));
}

}  // namespace

absl::StatusOr<std::shared_ptr<LoadedPlugin>> loadPlugin(
    std::string_view name_or_path, const std::vector<std::string>& plugin_dirs,
    const PluginArgs& args) {
  if (name_or_path.empty()) return absl::InvalidArgumentError("empty plugin name");

  if (isPath(name_or_path)) {
    fs::path file{std::string(name_or_path)};
    if (!isFile(file)) {
      std::error_code ec;
      const bool exists = fs::exists(file, ec);
      return absl::NotFoundError(absl::StrFormat("plugin '%s' not found (%s)", name_or_path,
                                                 exists ? "not a regular file" : "no such file"));
    }
    return loadFile(name_or_path, file, args);
  }

  const std::string file_name = std::string(name_or_path) + ".so";
  for (const std::string& dir : plugin_dirs) {
    fs::path candidate = fs::path(dir) / file_name;
    if (isFile(candidate)) return loadFile(name_or_path, candidate, args);
  }
  return absl::NotFoundError(absl::StrFormat("plugin '%s' not found (searched: %s)", name_or_path,
                                             plugin_dirs.empty()
                                                 ? std::string("no plugin directories")
                                                 : absl::StrJoin(plugin_dirs, ", ")));
}

std::vector<std::string> defaultPluginDirs() {
  // The kernel's path of the running program, symlinks resolved (a program started through a link
  // finds the plugins of the tree it really lives in). A program replaced while running reads as
  // "PATH (deleted)": its directory is still right.
  std::error_code ec;
  const fs::path program = fs::read_symlink("/proc/self/exe", ec);
  if (ec || !program.has_parent_path()) return {};
  const fs::path bin = program.parent_path();
  // Compared as files (device and inode), not as strings; false when the build tree is gone.
  if (fs::equivalent(bin, PLEXUS_BUILD_BIN_DIR, ec)) return {PLEXUS_BUILD_PLUGIN_DIR};
  return {(bin / PLEXUS_PLUGIN_DIR_FROM_BIN).lexically_normal().string()};
}

}  // namespace plexus
