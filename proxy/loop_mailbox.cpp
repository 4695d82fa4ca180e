#include "proxy/loop_mailbox.h"

#include <stdexcept>

namespace popbridge::proxy {

std::shared_ptr<LoopMailbox> LoopMailbox::create(uv_loop_t* loop) {
  auto mailbox = std::make_shared<LoopMailbox>(Key{});
  mailbox->async_ = UvHandle<uv_async_t>::allocate();
  if (uv_async_init(loop, mailbox->async_.get(), &LoopMailbox::onWake) != 0) {
    throw std::runtime_error("cannot create a loop mailbox");
  }
  // The handle points at the mailbox without owning it: close() (or the destructor) runs on the
  // loop thread before the mailbox can go away there.
  mailbox->async_->data = mailbox.get();
  return mailbox;
}

LoopMailbox::~LoopMailbox() = default;

bool LoopMailbox::post(std::function<void()> work) {
  {
    std::lock_guard lock(mutex_);
    if (closed_) return false;
    queue_.push_back(std::move(work));
    // Under the lock: close() cannot release the handle between the check and the send.
    uv_async_send(async_.get());
  }
  return true;
}

void LoopMailbox::close() {
  std::vector<std::function<void()>> dropped;
  {
    std::lock_guard lock(mutex_);
    if (closed_) return;
    closed_ = true;
    dropped.swap(queue_);
    async_.reset();
  }
}

void LoopMailbox::onWake(uv_async_t* async) noexcept {
  auto* self = static_cast<LoopMailbox*>(async->data);
  if (self == nullptr) return;
  // A closure may drop the last outside reference; keep the mailbox alive while draining.
  auto keep = self->shared_from_this();
  self->drain();
}

void LoopMailbox::drain() {
  std::vector<std::function<void()>> work;
  {
    std::lock_guard lock(mutex_);
    work.swap(queue_);
  }
  for (auto& item : work) {
    if (closed_) return;
    item();
  }
}

}  // namespace popbridge::proxy
