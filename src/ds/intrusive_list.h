// SPDX-License-Identifier: Apache-2.0
// Doubly linked intrusive list over objects that embed ListNode. Used for
// metadata that must not allocate (the thread-cache registry). Not
// thread-safe: the owner's lock protects it.
#pragma once

namespace heapguard {

struct ListNode {
  ListNode* prev = nullptr;
  ListNode* next = nullptr;
};

class IntrusiveList {
 public:
  constexpr IntrusiveList() = default;

  void push_front(ListNode* n) {
    n->prev = nullptr;
    n->next = head_;
    if (head_ != nullptr) head_->prev = n;
    head_ = n;
  }

  void remove(ListNode* n) {
    if (n->prev != nullptr) n->prev->next = n->next;
    else head_ = n->next;
    if (n->next != nullptr) n->next->prev = n->prev;
    n->prev = n->next = nullptr;
  }

  ListNode* front() const { return head_; }
  bool empty() const { return head_ == nullptr; }

 private:
  ListNode* head_ = nullptr;
};

}  // namespace heapguard
