// The system layer's epoll: one owned epoll fd, level-triggered watches (wake-up fds) and
// one-shot watches (FIFOs: reported once, then quiet until re-armed, so a stream can be left
// unread for a moment without the loop spinning on it).
import CSystem

public struct EventPoll: ~Copyable, Sendable {
    private let descriptor: FileDescriptor

    public init() { descriptor = FileDescriptor(logrelay_epoll_create()) }

    public func watch(_ fd: Int32) { _ = logrelay_epoll_add(descriptor.raw, fd) }
    public func watchOnce(_ fd: Int32) { _ = logrelay_epoll_add_oneshot(descriptor.raw, fd) }
    public func rearm(_ fd: Int32) { _ = logrelay_epoll_rearm(descriptor.raw, fd) }
    public func remove(_ fd: Int32) { _ = logrelay_epoll_del(descriptor.raw, fd) }

    /// Waits up to `timeoutMs` and stores the ready fds in `ready`; returns how many (0 on
    /// timeout or EINTR).
    public func wait(into ready: inout [Int32], timeoutMs: Int32) -> Int {
        max(0, Int(logrelay_epoll_wait(descriptor.raw, &ready, Int32(ready.count), timeoutMs)))
    }
}
