#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "proxy/uv_handle.h"

namespace popbridge::proxy {

// Runs closures posted from any thread on one event loop's thread, woken by a uv_async. Held by
// shared_ptr: a thread that finishes work for a loop that has since closed its mailbox posts
// into a closed one, and the closure is dropped (destroyed on the posting thread), never run.
class LoopMailbox : public std::enable_shared_from_this<LoopMailbox> {
 public:
  // On the loop's thread.
  static std::shared_ptr<LoopMailbox> create(uv_loop_t* loop);
  ~LoopMailbox();
  LoopMailbox(const LoopMailbox&) = delete;
  LoopMailbox& operator=(const LoopMailbox&) = delete;

  // Any thread. Returns false (and drops `work`) once the mailbox is closed. `work` must not
  // throw: it runs inside a libuv callback.
  bool post(std::function<void()> work);
  // On the loop's thread: closes the handle so that the loop can end. Closures not run yet are
  // dropped.
  void close();

 private:
  struct Key {};

 public:
  explicit LoopMailbox(Key) {}

 private:
  static void onWake(uv_async_t* async) noexcept;
  void drain();

  std::mutex mutex_;
  bool closed_ = false;
  std::vector<std::function<void()>> queue_;
  UvHandle<uv_async_t> async_;  // touched only on the loop's thread, and by uv_async_send
};

}  // namespace popbridge::proxy
