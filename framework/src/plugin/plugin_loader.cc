#include "plexus/plugin_loader.h"

#include <dlfcn.h>

#include <boost/dll/shared_library.hpp>
#include <exception>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace plexus {

namespace fs = std::filesystem;

struct LoadedPlugin::Library {
  boost::dll::shared_library lib;
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

absl::StatusOr<std::shared_ptr<LoadedPlugin>> loadFile(std::string_view requested,
                                                       const fs::path& file,
                                                       const PluginArgs& args) {
  std::error_code ec;
  fs::path abs = fs::absolute(file, ec);
  if (ec) abs = file;
  const std::string path = abs.lexically_normal().string();

  auto library = std::make_shared<LoadedPlugin::Library>();
  boost::dll::fs::error_code load_ec;
  // RTLD_NOW: an unresolved symbol fails here, not in the middle of serving. RTLD_LOCAL: plugins'
  // own symbols stay out of the global namespace, so two plugins never resolve to each other.
  library->lib.load(path, load_ec,
                    boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  if (load_ec || !library->lib.is_loaded()) {
    // Boost.DLL keeps dlerror()'s text after a failed load; it says why much better than errc.
    const char* why = ::dlerror();
    return absl::FailedPreconditionError(absl::StrFormat("'%s' is not a loadable shared object: %s",
                                                         path, why ? why : load_ec.message()));
  }

  if (!library->lib.has(kPluginDescriptorSymbol)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "'%s' has no %s symbol (not a Plexus plugin)", path, kPluginDescriptorSymbol));
  }
  // BOOST_DLL_ALIAS exports a `const void*` holding the descriptor's address (what get_alias
  // reads).
  const auto* descriptor =
      static_cast<const PluginDescriptor*>(library->lib.get<const void*>(kPluginDescriptorSymbol));
  if (descriptor == nullptr) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "'%s' has a null %s symbol (not a Plexus plugin)", path, kPluginDescriptorSymbol));
  }
  // api_version is the only field whose place every version agrees on: check it before the rest.
  if (descriptor->api_version != kPluginApiVersion) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "plugin '%s' was built for plugin API version %u, this server has version %u", requested,
        descriptor->api_version, kPluginApiVersion));
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
