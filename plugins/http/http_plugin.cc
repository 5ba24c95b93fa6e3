// http: an HTTP/1.1 server plugin (RFC 9112): fixed responses by path, static files from a root
// directory, keep-alive, pipelining, strict parsing with nginx-like limits.
//
// Shape of a request on one connection (one HttpHandler, on the connection's loop thread):
//
//   onData -> RequestParser (head, in place) -> prepare() decides the response (Pending)
//          -> BodyReader discards the body, if any -> emit() writes the response
//
// Responses of one onData() call are written into the loop's output string and sent with one
// send(), so a batch of pipelined requests costs one write. File bodies go out with sendFile().
//
// Per-loop state (LoopState: the cached Date, the output string, scratch space) is made in
// onLoopStart on the loop's own thread and only used there: no lock on the request path.

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "http_config.h"
#include "http_util.h"
#include "plexus/buffer.h"
#include "plexus/metrics.h"
#include "plexus/plugin.h"
#include "plexus/plugin_export.h"
#include "request_parser.h"

namespace plexus::http {
namespace {

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
// The loop's output string is kept for the next batch unless it grew past this.
constexpr size_t kKeepOutputCapacity = 256 * 1024;

// A file modified less than this long ago is not cached (see cacheFile()).
constexpr time_t kSettledSeconds = 2;

// A small file held in memory (see HttpConfig::file_cache). Immutable once made; shared with the
// requests that use it, so that an entry replaced or evicted meanwhile stays valid for them.
struct CachedFile {
  std::string body;
  dev_t dev = 0;
  ino_t ino = 0;
  timespec mtim{};
  std::string_view type;
};

// State of one event loop, used by that loop's connections only.
struct LoopState {
  time_t now = -1;
  char date[kHttpDateSize];
  char log_time[kLogTimeSize];
  std::string out;        // responses of the current onData() call, sent together
  std::string scratch;    // a normalized path
  std::string open_path;  // the same, relative to the root, as open() takes it
  std::string log_line;
  // By request path (normalized; a directory's path ends in '/', for its index file).
  absl::flat_hash_map<std::string, std::shared_ptr<const CachedFile>, PathHash, PathEq> files;
  size_t files_bytes = 0;

  int64_t mono_ms = 0;  // CLOCK_MONOTONIC_COARSE, for the lazy idle deadline

  // plexus_http_requests_total{status}: each status's series looked up the first time this loop
  // answers it (the registry's lock, once per status), then a plain counter.
  MetricsScope* metrics = nullptr;
  std::array<MetricCounter*, 600> by_status{};
  void countResponse(int code) {
    if (metrics == nullptr || code < 100 || code > 599) return;
    MetricCounter*& c = by_status[static_cast<size_t>(code)];
    if (c == nullptr) {
      c = metrics->counter("plexus_http_requests_total", "HTTP requests answered, by status code.",
                           {{"status", std::to_string(code)}});
    }
    c->add();
  }

  // The clocks read once per batch (vDSO calls, no syscall); the dates rewritten once a second.
  void tick() {
    timespec ts;
    ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    mono_ms = int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1000000;
    ::clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    if (ts.tv_sec == now) return;
    now = ts.tv_sec;
    formatHttpDate(now, date);
    formatLogTime(now, log_time);
  }
  std::string_view dateView() const { return {date, kHttpDateSize}; }
};

// Everything a handler needs from its factory; read-only after construction.
struct Server {
  HttpConfig config;
  int root_fd = -1;  // the root directory, every file is opened beneath it
  int log_fd = -1;
  bool own_log_fd = false;
  bool have_openat2 = true;
};

// Debian's Abseil has its own string_view: strings are put together by hand.
void append(std::string* s, std::initializer_list<std::string_view> parts) {
  for (std::string_view p : parts) s->append(p);
}
std::string cat(std::initializer_list<std::string_view> parts) {
  std::string s;
  append(&s, parts);
  return s;
}

void appendNumber(std::string* s, uint64_t v) {
  char buf[24];
  char* p = buf + sizeof buf;
  do {
    *--p = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  s->append(p, static_cast<size_t>(buf + sizeof buf - p));
}

// Writes `v` to the access log as nginx escapes it: quotes, backslashes and bytes outside
// printable ASCII as \xHH.
void appendEscaped(std::string* s, std::string_view v) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (unsigned char c : v) {
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
      const char esc[4] = {'\\', 'x', kHex[c >> 4], kHex[c & 15]};
      s->append(esc, 4);
    } else {
      s->push_back(static_cast<char>(c));
    }
  }
}

// Opens `rel` + `suffix` (relative, normalized, no ".." left) beneath the root. Symlinks may be
// followed as long as they stay beneath it (openat2 RESOLVE_BENEATH); with disable-symlinks, or
// where the kernel lacks openat2, every component is opened with O_NOFOLLOW, refusing every
// symlink. Returns the fd, or -errno. `path` is scratch space of the loop (the name needs a NUL; no
// allocation once it has grown).
int openBeneath(const Server& server, std::string_view rel, std::string_view suffix,
                std::string& path) {
  path.assign(rel.empty() && suffix.empty() ? std::string_view(".") : rel);
  path.append(suffix);
  constexpr int kFlags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;  // a FIFO must not block
  if (!server.config.disable_symlinks && server.have_openat2) {
    open_how how{};
    how.flags = kFlags;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    const long fd = ::syscall(SYS_openat2, server.root_fd, path.c_str(), &how, sizeof how);
    return fd >= 0 ? static_cast<int>(fd) : -errno;
  }
  int dir = server.root_fd;
  size_t start = 0;
  for (;;) {
    const size_t slash = path.find('/', start);
    const bool last = slash == std::string::npos || slash + 1 == path.size();
    if (!last) path[slash] = '\0';
    const char* name = path.c_str() + start;
    const int fd = ::openat(dir, name, kFlags | O_NOFOLLOW | (last ? 0 : O_DIRECTORY));
    int err = errno;
    struct stat st;
    if (fd < 0 && err == ENOTDIR && ::fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISLNK(st.st_mode)) {
      err = ELOOP;  // a symlink to a directory: refused like any other symlink
    }
    if (dir != server.root_fd) ::close(dir);
    if (fd < 0) return -err;
    if (last) return fd;
    dir = fd;
    start = slash + 1;
  }
}

// The response decided when a request's head is complete, sent once its body has been read.
// Owns what it needs (the head's bytes are gone by then).
struct Pending {
  enum class Kind : uint8_t { kNone, kFixed, kFile, kStatus };
  Kind kind = Kind::kNone;
  int status = 0;
  bool head = false;  // HEAD: headers only
  bool keep_alive = true;
  bool http10 = false;
  const FixedRoute* route = nullptr;
  // Files
  int fd = -1;
  uint64_t offset = 0, length = 0, size = 0;
  time_t mtime = 0;
  std::string_view type;  // a static string of mediaType()
  std::shared_ptr<const CachedFile> cached;  // the body comes from memory, not from fd
  char etag_buf[kEtagMaxSize];
  size_t etag_size = 0;
  std::string_view etag() const { return {etag_buf, etag_size}; }
  std::string location;     // kStatus 301
  std::string_view allow;   // kStatus 405 / OPTIONS
  std::string log_request;  // request line, referer, user agent: only with an access log
  std::string log_referer;
  std::string log_agent;

  // Ready for the next response (the strings keep their capacity).
  void clear() {
    if (fd >= 0) ::close(fd);
    fd = -1;
    cached.reset();
    kind = Kind::kNone;
    location.clear();
    allow = {};
  }
};

class HttpHandler final : public ProtocolHandler {
 public:
  HttpHandler(const Server& server, LoopState& loop)
      : server_(server),
        cfg_(server.config),
        loop_(loop),
        parser_(server.config.limits),
        body_(server.config.limits) {}
  ~HttpHandler() override { pending_.clear(); }

  void onConnect(Session& session) override {
    session_ = &session;
    setTimer(Timer::kHeader);  // the first request's head is due within header-timeout
  }

  void onData(Session& session, Buffer& input) override {
    if (phase_ == Phase::kClosed) {
      input.retrieveAll();
      return;
    }
    loop_.tick();
    const std::string_view data = input.view();
    size_t off = 0;
    bool body_progress = false, completed = false;
    for (;;) {
      if (phase_ == Phase::kBody) {
        size_t used = 0;
        const BodyReader::Result r = body_.consume(data.substr(off), &used);
        off += used;
        body_progress |= used > 0;
        if (r == BodyReader::Result::kIncomplete) break;
        if (r == BodyReader::Result::kError) {
          pending_.clear();
          sendError(body_.errorStatus());
          break;
        }
        phase_ = Phase::kHead;
        emit();
        if (phase_ == Phase::kClosed) break;
        continue;
      }
      if (off == data.size()) break;
      // Pipelining: stop taking requests while too much output waits for the peer.
      if (loop_.out.size() + session.pendingOutputBytes() > cfg_.pipeline_max_output) {
        flush();
        if (session.pendingOutputBytes() > cfg_.pipeline_max_output) {
          session.pauseReading();
          paused_ = true;
          break;
        }
      }
      const RequestParser::Result r = parser_.parse(data.substr(off));
      if (r == RequestParser::Result::kIncomplete) break;
      if (r == RequestParser::Result::kError) {
        sendError(parser_.errorStatus());
        break;
      }
      const Request& req = parser_.request();
      completed = true;
      prepare(req);
      off += req.head_length;
      if (req.hasBody()) {
        if (req.chunked) {
          body_.startChunked();
        } else {
          body_.startLength(req.content_length);
        }
        // The client waits for this before it sends the body (none of it has come yet).
        if (req.expect_continue && off == data.size()) loop_.out.append(kContinue);
        phase_ = Phase::kBody;
      }
      parser_.reset();
      if (phase_ == Phase::kHead) {
        emit();
        if (phase_ == Phase::kClosed) break;
      }
    }
    flush();
    if (phase_ == Phase::kClosed) {
      input.retrieveAll();
      return;
    }
    input.retrieve(off);
    partial_ = !input.empty() || phase_ == Phase::kBody;
    if (stopping_ && !partial_) {
      closeNow();
      return;
    }
    updateTimer(completed, body_progress);
  }

  void onDrained(Session& session) override {
    if (paused_ && phase_ != Phase::kClosed) {
      paused_ = false;
      session.resumeReading();  // onData() follows with the requests still waiting
      updateTimer(false, false);
    }
  }

  void onStop(Session& session) override {
    (void)session;
    stopping_ = true;
    // Idle between requests: close now. Otherwise the request in flight is answered with
    // `Connection: close` and the connection closes after it.
    if (phase_ == Phase::kHead && !partial_ && !paused_) closeNow();
  }

  void onClose(Session& session) override {
    (void)session;
    phase_ = Phase::kClosed;
    pending_.clear();
  }

 private:
  enum class Phase : uint8_t { kHead, kBody, kClosed };
  enum class Timer : uint8_t { kNone, kIdle, kHeader, kBody };

  // --- Deciding the response -------------------------------------------------------------------

  void prepare(const Request& req) {
    Pending& p = pending_;
    p.clear();
    p.head = req.method == Method::kHead;
    p.http10 = req.version_minor == 0;
    p.keep_alive = req.keep_alive && cfg_.keepalive_timeout.count() > 0;
    if (server_.log_fd >= 0) {
      p.log_request.assign(req.request_line);
      p.log_referer.assign(req.referer);
      p.log_agent.assign(req.user_agent);
    }
    if (req.method == Method::kConnect) return status(405, false, "GET, HEAD");
    if (req.path == "*") return status(200, p.keep_alive, "GET, HEAD, OPTIONS");  // OPTIONS *
    std::string_view path = req.path;
    if (!isNormalPath(path)) {
      if (const int st = normalizePath(path, &loop_.scratch); st != 0) {
        return status(st, st != 400 && p.keep_alive);
      }
      path = loop_.scratch;
    }
    if (auto it = cfg_.routes.find(path); it != cfg_.routes.end()) {
      p.kind = Pending::Kind::kFixed;
      p.route = &it->second;
      p.status = it->second.status;
      return;
    }
    if (server_.root_fd < 0) return status(404, p.keep_alive);
    if (req.method != Method::kGet && req.method != Method::kHead) {
      return status(405, p.keep_alive, "GET, HEAD");
    }
    serveFile(req, path);
  }

  void status(int code, bool keep_alive, std::string_view allow = {}) {
    pending_.kind = Pending::Kind::kStatus;
    pending_.status = code;
    pending_.keep_alive = keep_alive;
    pending_.allow = allow;
  }

  // A cached copy of the file at `path`, if it is still the same file: one stat of the path, no
  // open. A path whose file changed, or any doubt, goes the long way (open beneath the root).
  std::shared_ptr<const CachedFile> cachedFile(std::string_view path) {
    if (!cfg_.file_cache || cfg_.disable_symlinks) return nullptr;
    auto it = loop_.files.find(path);
    if (it == loop_.files.end()) return nullptr;
    const CachedFile& f = *it->second;
    std::string& rel = loop_.open_path;
    rel.assign(path.substr(1));
    if (rel.empty() || rel.back() == '/') rel.append(cfg_.index);
    struct stat st;
    if (::fstatat(server_.root_fd, rel.c_str(), &st, 0) != 0 || !S_ISREG(st.st_mode) ||
        st.st_dev != f.dev || st.st_ino != f.ino ||
        static_cast<uint64_t>(st.st_size) != f.body.size() ||
        st.st_mtim.tv_sec != f.mtim.tv_sec || st.st_mtim.tv_nsec != f.mtim.tv_nsec) {
      loop_.files_bytes -= f.body.size();
      loop_.files.erase(it);
      return nullptr;
    }
    return it->second;
  }

  // Reads a small regular file (open as `fd`, described by `st`) into the loop's cache.
  std::shared_ptr<const CachedFile> cacheFile(std::string_view path, int fd,
                                              const struct stat& st, std::string_view type) {
    const auto size = static_cast<uint64_t>(st.st_size);
    // A file modified in the last seconds may be written again within the same tick of the file
    // system's clock, leaving size and time as they were: such files are served from disk until
    // they have been still for a while, so that a later change always shows in the stat.
    if (!cfg_.file_cache || cfg_.disable_symlinks || size > cfg_.file_cache_max_file ||
        size > cfg_.file_cache_size || st.st_mtim.tv_sec + kSettledSeconds > loop_.now) {
      return nullptr;
    }
    auto f = std::make_shared<CachedFile>();
    f->body.resize(size);
    size_t done = 0;
    while (done < size) {
      const ssize_t n = ::pread(fd, f->body.data() + done, size - done, static_cast<off_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return nullptr;  // changed under us: serve it from the fd instead
      done += static_cast<size_t>(n);
    }
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    f->mtim = st.st_mtim;
    f->type = type;
    if (loop_.files_bytes + size > cfg_.file_cache_size) {
      loop_.files.clear();  // simple and bounded: start over
      loop_.files_bytes = 0;
    }
    auto [it, inserted] = loop_.files.try_emplace(std::string(path), f);
    if (!inserted) {
      loop_.files_bytes -= it->second->body.size();
      it->second = f;
    }
    loop_.files_bytes += size;
    return f;
  }

  void serveFile(const Request& req, std::string_view path) {
    Pending& p = pending_;
    if (auto cached = cachedFile(path)) {
      p.cached = std::move(cached);
      const CachedFile& f = *p.cached;
      fileFound(req, f.body.size(), f.mtim.tv_sec, f.type);
      return;
    }
    std::string_view rel = path.substr(1);
    int fd = openBeneath(server_, rel, {}, loop_.open_path);
    struct stat st;
    if (fd >= 0 && ::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
      ::close(fd);
      if (path.back() != '/') {
        // As nginx does: a directory named without its slash is redirected to it.
        p.location = cat({req.path, "/", req.query.empty() ? "" : "?", req.query});
        return status(301, p.keep_alive);
      }
      fd = openBeneath(server_, rel, server_.config.index, loop_.open_path);
      if (fd == -ENOENT) return status(403, p.keep_alive);  // no index: listing is forbidden
    }
    if (fd < 0) {
      switch (-fd) {
        case ENOENT:
        case ENOTDIR:
        case ENAMETOOLONG:
          return status(404, p.keep_alive);
        case EACCES:
        case EPERM:
        case ELOOP:  // a symlink, with disable-symlinks
        case EXDEV:  // a symlink leading out of the root
          return status(403, p.keep_alive);
        default:
          return status(500, false);
      }
    }
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      return status(403, p.keep_alive);  // a device, a FIFO, a socket, a directory as index
    }
    const std::string_view type =
        mediaType(path.back() == '/' ? std::string_view(server_.config.index) : path);
    if (auto cached = cacheFile(path, fd, st, type)) {
      ::close(fd);
      p.cached = std::move(cached);
    } else {
      p.fd = fd;
    }
    fileFound(req, static_cast<uint64_t>(st.st_size), st.st_mtime, type);
  }

  // The file to answer with is known (open as pending_.fd, or cached): status, validators, range.
  void fileFound(const Request& req, uint64_t size, time_t mtime, std::string_view type) {
    Pending& p = pending_;
    p.size = size;
    p.mtime = mtime;
    p.type = type;
    p.etag_size = formatEtag(p.mtime, p.size, p.etag_buf);
    p.kind = Pending::Kind::kFile;
    p.status = 200;
    p.offset = 0;
    p.length = p.size;

    // Conditional requests (RFC 9110 13.2.2): If-None-Match wins over If-Modified-Since.
    bool not_modified = false;
    if (!req.if_none_match.empty()) {
      not_modified = noneMatchHits(req.if_none_match, p.etag());
    } else if (!req.if_modified_since.empty()) {
      time_t since;
      not_modified = parseHttpDate(req.if_modified_since, &since) && p.mtime <= since;
    }
    if (not_modified) {
      p.status = 304;
      return;
    }
    if (!req.range.empty() && req.method == Method::kGet && ifRangeHolds(req.if_range)) {
      ByteRange range;
      switch (parseRange(req.range, p.size, &range)) {
        case RangeResult::kIgnore:
          break;
        case RangeResult::kSatisfiable:
          p.status = 206;
          p.offset = range.first;
          p.length = range.last - range.first + 1;
          break;
        case RangeResult::kUnsatisfiable:
          p.status = 416;
          break;
      }
    }
  }

  // If-Range: the Range applies only while the file is the one the validator names.
  bool ifRangeHolds(std::string_view if_range) const {
    if (if_range.empty()) return true;
    if (if_range.front() == '"') return if_range == pending_.etag();  // strong comparison
    if (if_range.size() > 1 && if_range[0] == 'W' && if_range[1] == '/') return false;
    time_t t;
    return parseHttpDate(if_range, &t) && t == pending_.mtime;
  }

  // --- Writing the response --------------------------------------------------------------------

  void emit() {
    Pending& p = pending_;
    std::string& out = loop_.out;
    const bool keep_alive = p.keep_alive && !stopping_;
    uint64_t body_bytes = 0;
    if (p.kind == Pending::Kind::kFixed) {
      const FixedRoute& r = *p.route;
      out.append(r.head_start);
      out.append(loop_.dateView());
      out.append(r.head_rest);
      appendConnection(keep_alive, p.http10);
      out.append("\r\n");
      if (!p.head) {
        out.append(r.body);
        body_bytes = r.body.size();
      }
    } else if (p.kind == Pending::Kind::kFile) {
      body_bytes = emitFile(keep_alive);
    } else {
      body_bytes = emitStatus(p.status, keep_alive);
    }
    log(p.status, body_bytes);
    p.clear();
    if (!keep_alive) closeNow();
  }

  void appendStatusLine(int code) {
    std::string& out = loop_.out;
    out.append("HTTP/1.1 ");
    appendNumber(&out, static_cast<uint64_t>(code));
    out.push_back(' ');
    out.append(reasonPhrase(code));
    out.append("\r\nServer: plexus\r\nDate: ");
    out.append(loop_.dateView());
    out.append("\r\n");
  }

  void appendConnection(bool keep_alive, bool http10) {
    if (!keep_alive) {
      loop_.out.append("Connection: close\r\n");
    } else if (http10) {
      loop_.out.append("Connection: keep-alive\r\n");
    }
  }

  // A response whose body is a line of text naming the status (errors, redirects, OPTIONS).
  uint64_t emitStatus(int code, bool keep_alive) {
    Pending& p = pending_;
    std::string& out = loop_.out;
    appendStatusLine(code);
    if (!p.location.empty()) append(&out, {"Location: ", p.location, "\r\n"});
    if (!p.allow.empty()) append(&out, {"Allow: ", p.allow, "\r\n"});
    const bool has_body = code != 200 && code != 204 && code != 304;
    uint64_t size = 0;
    if (has_body) {
      size = 3 + 1 + reasonPhrase(code).size() + 1;  // "404 Not Found\n"
      out.append("Content-Type: text/plain\r\nContent-Length: ");
    } else {
      out.append("Content-Length: ");
    }
    appendNumber(&out, size);
    out.append("\r\n");
    appendConnection(keep_alive, p.http10);
    out.append("\r\n");
    if (has_body && !p.head) {
      appendNumber(&out, static_cast<uint64_t>(code));
      out.push_back(' ');
      out.append(reasonPhrase(code));
      out.push_back('\n');
      return size;
    }
    return 0;
  }

  uint64_t emitFile(bool keep_alive) {
    Pending& p = pending_;
    std::string& out = loop_.out;
    appendStatusLine(p.status);
    char modified[kHttpDateSize];
    formatHttpDate(p.mtime, modified);
    if (p.status == 304) {
      append(&out, {"Last-Modified: ", std::string_view(modified, kHttpDateSize),
                    "\r\nETag: ", p.etag(), "\r\n"});
      appendConnection(keep_alive, p.http10);
      out.append("\r\n");
      return 0;
    }
    if (p.status == 416) {
      out.append("Content-Range: bytes */");
      appendNumber(&out, p.size);
      out.append("\r\nContent-Length: 0\r\n");
      appendConnection(keep_alive, p.http10);
      out.append("\r\n");
      return 0;
    }
    append(&out, {"Content-Type: ", p.type, "\r\nContent-Length: "});
    appendNumber(&out, p.length);
    append(&out, {"\r\nLast-Modified: ", std::string_view(modified, kHttpDateSize),
                  "\r\nETag: ", p.etag(), "\r\nAccept-Ranges: bytes\r\n"});
    if (p.status == 206) {
      out.append("Content-Range: bytes ");
      appendNumber(&out, p.offset);
      out.push_back('-');
      appendNumber(&out, p.offset + p.length - 1);
      out.push_back('/');
      appendNumber(&out, p.size);
      out.append("\r\n");
    }
    appendConnection(keep_alive, p.http10);
    out.append("\r\n");
    if (p.head || p.length == 0) return 0;
    if (p.cached) {
      out.append(std::string_view(p.cached->body).substr(p.offset, p.length));
      return p.length;
    }
    flush();  // the head goes before the file's bytes
    session_->sendFile(p.fd, p.offset, p.length);
    p.fd = -1;  // the session owns it now
    return p.length;
  }

  // A malformed request, a limit passed, or a deadline: the answer, then the close.
  void sendError(int code) {
    pending_.clear();
    pending_.head = false;
    pending_.http10 = false;
    if (server_.log_fd >= 0) {
      pending_.log_request.clear();
      pending_.log_referer.clear();
      pending_.log_agent.clear();
    }
    emitStatus(code, false);
    log(code, 0);
    closeNow();
  }

  void flush() {
    if (loop_.out.empty()) return;
    session_->send(loop_.out);
    loop_.out.clear();
    if (loop_.out.capacity() > kKeepOutputCapacity) std::string().swap(loop_.out);
  }

  void closeNow() {
    flush();
    cancelTimer();
    phase_ = Phase::kClosed;
    session_->close();
  }

  void log(int code, uint64_t body_bytes) {
    loop_.countResponse(code);
    if (server_.log_fd < 0) return;
    Pending& p = pending_;
    std::string& line = loop_.log_line;
    line.clear();
    std::string peer = session_->peerAddress();
    const size_t colon = peer.rfind(':');
    if (colon != std::string::npos) peer.resize(colon);
    if (peer.size() > 2 && peer.front() == '[') peer = peer.substr(1, peer.size() - 2);
    append(&line, {peer, " - - [", std::string_view(loop_.log_time, kLogTimeSize), "] \""});
    appendEscaped(&line, p.log_request);
    line.append("\" ");
    appendNumber(&line, static_cast<uint64_t>(code));
    line.push_back(' ');
    appendNumber(&line, body_bytes);
    line.append(" \"");
    appendEscaped(&line, p.log_referer.empty() ? "-" : p.log_referer);
    line.append("\" \"");
    appendEscaped(&line, p.log_agent.empty() ? "-" : p.log_agent);
    line.append("\"\n");
    // One write per line, O_APPEND: lines of several loops do not interleave.
    const ssize_t n = ::write(server_.log_fd, line.data(), line.size());
    (void)n;  // a full disk loses log lines, never requests
  }

  // --- Timers ----------------------------------------------------------------------------------

  // The deadline the connection waits under now: idle (keepalive-timeout, then a silent close), a
  // head begun (header-timeout, 408), a body (body-timeout between reads, 408).
  void updateTimer(bool completed, bool body_progress) {
    Timer want = Timer::kIdle;
    if (paused_) {
      want = Timer::kNone;  // waiting for the peer to read: the server's idle timeout governs
    } else if (phase_ == Phase::kBody) {
      want = Timer::kBody;
    } else if (partial_) {
      want = Timer::kHeader;
    }
    if (want == Timer::kIdle && timer_kind_ == Timer::kIdle) {
      // Idle again after more requests: the deadline moves, but lazily. Setting a timer costs
      // allocations in the host, too much for every keep-alive request; the armed one checks, when
      // it fires, whether requests came meanwhile and sets itself again for what is left.
      if (completed) {
        idle_activity_ = true;
        last_activity_ms_ = loop_.mono_ms;
      }
      return;
    }
    // A new request restarts the header deadline; a body's bytes restart its own.
    const bool restart = want == Timer::kBody ? body_progress : completed;
    if (want == timer_kind_ && !restart) return;
    setTimer(want);
  }

  void setTimer(Timer kind, std::chrono::nanoseconds idle_left = std::chrono::nanoseconds(0)) {
    cancelTimer();
    idle_activity_ = false;
    std::chrono::nanoseconds delay{0};
    switch (kind) {
      case Timer::kNone:
        return;
      case Timer::kIdle:
        delay = idle_left.count() > 0 ? idle_left : cfg_.keepalive_timeout;
        break;
      case Timer::kHeader:
        delay = cfg_.header_timeout;
        break;
      case Timer::kBody:
        delay = cfg_.body_timeout;
        break;
    }
    if (delay.count() == 0) return;
    timer_kind_ = kind;
    timer_ = session_->runAfter(delay, [this, kind] { onTimer(kind); });
  }

  void cancelTimer() {
    if (timer_ != 0) session_->cancelTimer(timer_);
    timer_ = 0;
    timer_kind_ = Timer::kNone;
  }

  void onTimer(Timer kind) {
    timer_ = 0;
    timer_kind_ = Timer::kNone;
    if (phase_ == Phase::kClosed) return;
    if (kind == Timer::kIdle) {
      if (idle_activity_) {
        // Requests came since the timer was set: wait out the rest after the last one.
        loop_.tick();
        const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(
            cfg_.keepalive_timeout - std::chrono::milliseconds(loop_.mono_ms - last_activity_ms_));
        if (left.count() > 0) {
          setTimer(Timer::kIdle, left);
          return;
        }
      }
      closeNow();
      return;
    }
    loop_.tick();
    pending_.clear();
    sendError(408);
  }

  const Server& server_;
  const HttpConfig& cfg_;
  LoopState& loop_;
  Session* session_ = nullptr;
  RequestParser parser_;
  BodyReader body_;
  Pending pending_;
  SessionTimerId timer_ = 0;
  Timer timer_kind_ = Timer::kNone;
  bool idle_activity_ = false;    // requests completed since the idle timer was set
  int64_t last_activity_ms_ = 0;  // when the last of them completed (LoopState::mono_ms)
  Phase phase_ = Phase::kHead;
  bool partial_ = false;   // part of a request (head or body) is in
  bool paused_ = false;    // reading paused until the output drains
  bool stopping_ = false;  // the server stops: the next response closes
};

class HttpFactory final : public PluginFactory {
 public:
  explicit HttpFactory(const PluginArgs& args) {
    absl::StatusOr<HttpConfig> config = HttpConfig::fromArgs(args);
    if (!config.ok()) throw std::invalid_argument(std::string(config.status().message()));
    server_.config = *std::move(config);
    const HttpConfig& c = server_.config;
    if (!c.root.empty()) {
      server_.root_fd = ::open(c.root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (server_.root_fd < 0) {
        throw std::invalid_argument(
            cat({"http: cannot open root '", c.root, "': ", std::strerror(errno)}));
      }
      open_how how{};
      how.flags = O_RDONLY | O_CLOEXEC | O_DIRECTORY;
      how.resolve = RESOLVE_BENEATH;
      const long fd = ::syscall(SYS_openat2, server_.root_fd, ".", &how, sizeof how);
      // Where it cannot be used (an old kernel, a seccomp filter), every symlink is refused.
      server_.have_openat2 = fd >= 0;
      if (fd >= 0) ::close(static_cast<int>(fd));
    }
    if (c.access_log == "stderr") {
      server_.log_fd = STDERR_FILENO;
    } else if (!c.access_log.empty()) {
      server_.log_fd =
          ::open(c.access_log.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
      if (server_.log_fd < 0) {
        const int err = errno;
        if (server_.root_fd >= 0) ::close(server_.root_fd);
        throw std::invalid_argument(
            cat({"http: cannot open access-log '", c.access_log, "': ", std::strerror(err)}));
      }
      server_.own_log_fd = true;
    }
  }
  ~HttpFactory() override {
    if (server_.root_fd >= 0) ::close(server_.root_fd);
    if (server_.own_log_fd) ::close(server_.log_fd);
  }

  void onLoopStart(const LoopInfo& loop) override { loopState(loop); }

  void onLoopStop(const LoopInfo& loop) override {
    absl::MutexLock lock(&mu_);
    if (loop.index < loops_.size()) loops_[loop.index].reset();
  }

  std::unique_ptr<ProtocolHandler> newHandler(const LoopInfo& loop) override {
    return std::make_unique<HttpHandler>(server_, *loopState(loop));
  }

 private:
  // The loop's state, made on first use. The lock guards the vector, taken once per connection;
  // each LoopState is then used by its own loop thread only.
  LoopState* loopState(const LoopInfo& loop) {
    absl::MutexLock lock(&mu_);
    if (loops_.size() <= loop.index) loops_.resize(std::max(loop.count, loop.index + 1));
    if (!loops_[loop.index]) {
      loops_[loop.index] = std::make_unique<LoopState>();
      loops_[loop.index]->out.reserve(16 * 1024);
      loops_[loop.index]->metrics = loop.metrics;
    }
    return loops_[loop.index].get();
  }

  Server server_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<LoopState>> loops_ ABSL_GUARDED_BY(mu_);
};

}  // namespace
}  // namespace plexus::http

PLEXUS_PLUGIN("http", "HTTP/1.1 server: fixed responses and static files",
              plexus::http::HttpFactory)
