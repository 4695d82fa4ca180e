#pragma once

#include <uv.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <type_traits>
#include <utility>

namespace popbridge::proxy {

// Runs `body` from a libuv callback where nothing may throw and nobody is left to tell: an
// exception (a std::bad_alloc building a log line) is dropped rather than ending the process.
// What it interrupted must be left safe by construction (a timer or an idle limit ends it).
template <typename Body>
void swallowExceptions(Body&& body) noexcept {
  try {
    body();
  } catch (...) {
  }
}

// Owns the memory of one libuv handle.
//
// libuv keeps using a handle until the close callback of uv_close() has run,
// which is a later loop iteration. So destruction never frees the memory
// directly: it calls uv_close() with a callback that frees it. A handle that was
// allocated but never passed to a uv_*_init function is freed at once, since the
// loop does not know it. Consequently the loop must run once more after the last
// UvHandle is gone (uv_run, then uv_loop_close) or that memory is reported as a
// leak.
//
// The memory is zeroed on allocation, and libuv's init functions set
// uv_handle_t::type, which is how "was it ever initialised" is told apart.
// Do not use with an init function that can fail after touching the handle
// (uv_tcp_init_ex with a domain); all the ones popbridge uses either cannot fail
// or fail before initialising.
template <typename T>
class UvHandle {
  static_assert(std::is_standard_layout_v<T>, "libuv handles are C structs");

 public:
  UvHandle() = default;

  // Zeroed, not yet initialised: pass get() to uv_tcp_init, uv_timer_init, ...
  static UvHandle allocate() { return UvHandle(std::make_unique<T>().release()); }

  UvHandle(const UvHandle&) = delete;
  UvHandle& operator=(const UvHandle&) = delete;
  UvHandle(UvHandle&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
  UvHandle& operator=(UvHandle&& other) noexcept {
    if (this != &other) {
      reset();
      handle_ = std::exchange(other.handle_, nullptr);
    }
    return *this;
  }
  ~UvHandle() { reset(); }

  T* get() const { return handle_; }
  T* operator->() const { return handle_; }
  uv_handle_t* handle() const { return reinterpret_cast<uv_handle_t*>(handle_); }
  uv_stream_t* stream() const { return reinterpret_cast<uv_stream_t*>(handle_); }
  explicit operator bool() const { return handle_ != nullptr; }

  bool initialised() const {
    return handle_ != nullptr && handle()->type != UV_UNKNOWN_HANDLE && handle()->loop != nullptr;
  }

  // Gives up ownership without closing: the caller must uv_close the handle and free it with
  // delete in the close callback (a child process handle that must live until its exit).
  T* release() { return std::exchange(handle_, nullptr); }

  // Closes (or frees) the handle now; the memory goes when libuv is done with it.
  // Pending requests on the handle (writes, connects, shutdowns) complete with
  // UV_ECANCELED before the memory is freed.
  void reset() {
    T* h = std::exchange(handle_, nullptr);
    if (h == nullptr) return;
    auto* base = reinterpret_cast<uv_handle_t*>(h);
    if (base->type == UV_UNKNOWN_HANDLE || base->loop == nullptr) {
      std::unique_ptr<T> owned(h);
      return;
    }
    base->data = nullptr;
    uv_close(base, &UvHandle::freeAfterClose);
  }

 private:
  explicit UvHandle(T* handle) : handle_(handle) {}

  static void freeAfterClose(uv_handle_t* handle) noexcept {
    std::unique_ptr<T> owned(reinterpret_cast<T*>(handle));
  }

  T* handle_ = nullptr;
};

// A one-shot timer. The callback may destroy the Timer (or its owner); it is
// moved out of the Timer before it runs. Not movable: the handle points back at
// the Timer.
class Timer {
 public:
  explicit Timer(uv_loop_t* loop) : handle_(UvHandle<uv_timer_t>::allocate()) {
    uv_timer_init(loop, handle_.get());  // cannot fail
    handle_->data = this;
  }
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  ~Timer() = default;

  // (Re)arms the timer; a pending callback is replaced. A zero delay fires on the
  // next loop iteration, which makes this the way to defer work out of a caller's
  // stack frame.
  void start(std::chrono::milliseconds delay, std::function<void()> callback) {
    callback_ = std::move(callback);
    // The loop's clock is only refreshed once per iteration; a slow callback
    // before this call would otherwise shorten the delay.
    uv_update_time(handle_->loop);
    const auto ms = delay.count() < 0 ? 0 : static_cast<std::uint64_t>(delay.count());
    uv_timer_start(handle_.get(), &Timer::fire, ms, 0);
  }

  void stop() {
    uv_timer_stop(handle_.get());
    callback_ = nullptr;
  }

  bool active() const { return uv_is_active(handle_.handle()) != 0; }

 private:
  static void fire(uv_timer_t* handle) noexcept {
    auto* self = static_cast<Timer*>(handle->data);
    if (self == nullptr) return;
    auto callback = std::move(self->callback_);
    self->callback_ = nullptr;
    if (callback) callback();
  }

  UvHandle<uv_timer_t> handle_;
  std::function<void()> callback_;
};

}  // namespace popbridge::proxy
