// The one lock type of the plugin: Synchronization's Mutex, under the same name so that
// every `Mutex` in this module is this one. Its Linux futex is invisible to ThreadSanitizer,
// which then reports every value it guards as racing; TSAN builds (`-DTSAN`, make test)
// tell the sanitizer where the lock is taken and given back.
import Synchronization
#if TSAN
import CSystem
#endif

public struct Mutex<Value: ~Copyable>: ~Copyable, Sendable {
    private let inner: Synchronization.Mutex<Value>
    #if TSAN
    /// The address the sanitizer knows this lock by (kept as bits: an address is not Sendable).
    private let token = Int(bitPattern: UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 1))
    #endif

    public init(_ initialValue: consuming sending Value) {
        inner = Synchronization.Mutex(initialValue)
    }

    #if TSAN
    deinit { UnsafeMutableRawPointer(bitPattern: token)?.deallocate() }
    #endif

    public borrowing func withLock<Result: ~Copyable, E: Error>(
        _ body: (inout sending Value) throws(E) -> sending Result
    ) throws(E) -> sending Result {
        try inner.withLock { (value: inout sending Value) throws(E) -> sending Result in
            #if TSAN
            __tsan_acquire(UnsafeMutableRawPointer(bitPattern: token))
            defer { __tsan_release(UnsafeMutableRawPointer(bitPattern: token)) }
            #endif
            return try body(&value)
        }
    }
}
