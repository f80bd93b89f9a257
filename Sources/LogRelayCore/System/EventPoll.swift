// The system layer's epoll: one owned epoll fd with level-triggered watches (no re-arming
// after each read; a watcher that must leave an fd unread for a while removes it).
import CSystem

public struct EventPoll: ~Copyable, Sendable {
    private let descriptor: FileDescriptor

    public init() { descriptor = FileDescriptor(logrelay_epoll_create()) }

    public func watch(_ fd: Int32) { _ = logrelay_epoll_add(descriptor.raw, fd) }
    public func remove(_ fd: Int32) { _ = logrelay_epoll_del(descriptor.raw, fd) }

    /// Waits up to `timeoutMs` and stores the ready fds in `ready`; returns how many (0 on
    /// timeout or EINTR).
    public func wait(into ready: inout [Int32], timeoutMs: Int32) -> Int {
        max(0, Int(logrelay_epoll_wait(descriptor.raw, &ready, Int32(ready.count), timeoutMs)))
    }
}
