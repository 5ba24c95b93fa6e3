// What only the poll engine does: an fd that is not open comes back as kEventError (POLLNVAL).

#include <unistd.h>

#include <vector>

#include "engines/engine_test_util.h"
#include "engines/poll_engine.h"
#include "gtest/gtest.h"

namespace plexus::detail {
namespace {

TEST(PollEngineTest, ClosedFdIsReportedAsError) {
  PollEngine engine;
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ::close(fds[0]);
  ::close(fds[1]);
  int tag = 0;
  ASSERT_TRUE(engine.add(fds[0], kEventRead, &tag).ok());
  absl::StatusOr<std::vector<engine_test::ReadyEvent>> ready = engine_test::dispatchAll(engine, 0);
  ASSERT_TRUE(ready.ok()) << ready.status();
  const std::vector<engine_test::ReadyEvent>& events = *ready;
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].fd, fds[0]);
  EXPECT_EQ(events[0].ctx, &tag);
  EXPECT_EQ(events[0].events, kEventError);
  EXPECT_TRUE(engine.remove(fds[0]).ok());
}

}  // namespace
}  // namespace plexus::detail
