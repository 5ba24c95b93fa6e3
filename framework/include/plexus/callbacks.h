#pragma once

#include <functional>
#include <memory>

namespace plexus {

class Buffer;
class TcpConnection;
using TcpConnectionPtr = std::shared_ptr<TcpConnection>;

// All connection callbacks run on the connection's loop thread.
// Called once when the connection is established and once when it is closed (check connected()).
using ConnectionCallback = std::function<void(const TcpConnectionPtr&)>;
// Called with the input buffer after each read; the callee retrieves what it consumed.
using MessageCallback = std::function<void(const TcpConnectionPtr&, Buffer*)>;
// Called when bytes that a send had to queue (the socket took only part of them) have all been
// written. A send that the socket takes whole reports nothing: the output buffer is empty then.
// The same contract as a 'drain' event: send until the output buffer holds bytes, then wait for this.
using WriteCompleteCallback = std::function<void(const TcpConnectionPtr&)>;
// Called when the output buffer first grows past the high-water mark (reading is paused then).
using HighWaterMarkCallback = std::function<void(const TcpConnectionPtr&, size_t)>;

}  // namespace plexus
