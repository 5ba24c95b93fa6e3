#include "engines/poll_engine.h"

#include <cerrno>
#include <new>

#include "absl/strings/str_format.h"

namespace plexus::detail {

static_assert(kEventRead == POLLIN);
static_assert(kEventPriority == POLLPRI);
static_assert(kEventWrite == POLLOUT);
static_assert(kEventError == POLLERR);
static_assert(kEventHangup == POLLHUP);
static_assert(kEventReadHangup == POLLRDHUP);
static_assert((kEventFailed & (POLLNVAL | POLLRDNORM | POLLRDBAND | POLLWRNORM | POLLWRBAND |
                               POLLMSG | POLLREMOVE | POLLRDHUP)) == 0);

absl::StatusOr<std::unique_ptr<Engine>> makePollEngine(const EngineOptions&) {
  return std::make_unique<PollEngine>();
}

int PollEngine::indexOf(int fd) const {
  if (fd < 0 || static_cast<size_t>(fd) >= index_.size()) return -1;
  return index_[fd];
}

absl::Status PollEngine::add(int fd, uint32_t interest, void* ctx) {
  if (fd < 0) return absl::InvalidArgumentError(absl::StrFormat("poll engine: bad fd %d", fd));
  if (indexOf(fd) >= 0) {
    return absl::AlreadyExistsError(absl::StrFormat("poll engine: fd %d is already registered", fd));
  }
  // The set grows by one entry in each vector: if memory runs out, the fd stays unregistered and
  // the caller closes it, like any other failed registration.
  try {
    if (static_cast<size_t>(fd) >= index_.size()) index_.resize(static_cast<size_t>(fd) + 1, -1);
    pollfds_.reserve(pollfds_.size() + 1);
    ctxs_.reserve(ctxs_.size() + 1);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        absl::StrFormat("poll engine: no memory to watch fd %d", fd));
  }
  index_[fd] = static_cast<int>(pollfds_.size());
  pollfds_.push_back(pollfd{fd, static_cast<short>(interest & ~kEventLevel), 0});
  ctxs_.push_back(ctx);
  return absl::OkStatus();
}

absl::Status PollEngine::modify(int fd, uint32_t interest, void* ctx) {
  int i = indexOf(fd);
  if (i < 0) return absl::NotFoundError(absl::StrFormat("poll engine: fd %d is not registered", fd));
  pollfds_[i].events = static_cast<short>(interest & ~kEventLevel);
  ctxs_[i] = ctx;
  return absl::OkStatus();
}

absl::Status PollEngine::remove(int fd) {
  int i = indexOf(fd);
  if (i < 0) return absl::NotFoundError(absl::StrFormat("poll engine: fd %d is not registered", fd));
  // Move the last entry into the hole: O(1), and the order of pollfds_ does not matter.
  const size_t last = pollfds_.size() - 1;
  if (static_cast<size_t>(i) != last) {
    pollfds_[i] = pollfds_[last];
    ctxs_[i] = ctxs_[last];
    index_[pollfds_[i].fd] = i;
  }
  pollfds_.pop_back();
  ctxs_.pop_back();
  index_[fd] = -1;
  batch_.forget(fd);
  return absl::OkStatus();
}

absl::StatusOr<int> PollEngine::dispatch(int timeout_ms, ReadyFn fn, void* arg) {
  int n = ::poll(pollfds_.data(), pollfds_.size(), timeout_ms);
  if (n < 0) {
    if (errno == EINTR) return 0;
    return absl::ErrnoToStatus(errno, "poll");
  }
  // Collected first: handlers add and remove fds, which reorders pollfds_.
  batch_.clear();
  for (size_t i = 0; i < pollfds_.size() && batch_.size() < n; ++i) {
    const auto revents = static_cast<uint32_t>(static_cast<unsigned short>(pollfds_[i].revents));
    if (revents == 0) continue;
    // POLLNVAL (fd not open) has no kEvent* bit of its own: report it as an error.
    uint32_t events = revents & ~static_cast<uint32_t>(POLLNVAL);
    if (revents & POLLNVAL) events |= kEventError;
    batch_.push(pollfds_[i].fd, events, ctxs_[i]);
  }
  const int ready = batch_.size();
  batch_.dispatch(fn, arg);
  return ready;
}

}  // namespace plexus::detail
