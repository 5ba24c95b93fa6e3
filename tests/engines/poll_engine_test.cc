// What only the poll engine does: an fd that is not open comes back as kEventError (POLLNVAL).

#include <unistd.h>

#include <vector>

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
  std::vector<ReadyEvent> events;
  ASSERT_EQ(*engine.wait(0, &events), 1);
  EXPECT_EQ(events[0].fd, fds[0]);
  EXPECT_EQ(events[0].ctx, &tag);
  EXPECT_EQ(events[0].events, kEventError);
  EXPECT_TRUE(engine.remove(fds[0]).ok());
}

}  // namespace
}  // namespace plexus::detail
