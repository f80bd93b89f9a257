// One memory budget for every stream whose sink keeps up. Each buffer charges the part of
// its bytes below its throttle mark (what is "in flight"; outage buffering beyond it is
// bounded per container by buffer-size instead); a read takes no more than what is left of
// the budget, and once it is spent, streams holding more than a small share pause, so memory
// follows what is in flight, not the number of containers times a per-stream mark.
// Releasing bytes below the limit, or below a buffer's mark, wakes the stream loop: paused
// streams resume on that event, never by polling. The other way round, while the loop reads
// a round of streams, the budget holds the sinks' wake-ups: the buffers note them, and the
// loop wakes each sink once after the round.
import Synchronization

public final class FlowBudget: Sendable {
    public let limitBytes: Int
    /// A buffer holding less than this never pauses for the shared budget.
    public let minimumShare: Int
    private let used = Atomic<Int>(0)
    private let onRelease: Wakeup?
    private let holdingWakes = Atomic<Bool>(false)

    public static let defaultLimitBytes = 1 << 20
    public static let defaultMinimumShare = 16 * 1024

    /// `onRelease`: the stream loop's wakeup (nil: nobody waits, as in unit tests).
    public init(limitBytes: Int = FlowBudget.defaultLimitBytes, minimumShare: Int = FlowBudget.defaultMinimumShare,
                onRelease: Wakeup? = nil) {
        self.limitBytes = limitBytes
        self.minimumShare = minimumShare
        self.onRelease = onRelease
    }

    /// Set and cleared by the stream loop around a round.
    func holdWakes(_ hold: Bool) { holdingWakes.store(hold, ordering: .relaxed) }
    var holdsWakes: Bool { holdingWakes.load(ordering: .relaxed) }

    public var isSpent: Bool { used.load(ordering: .relaxed) >= limitBytes }

    /// How much more a buffer that holds `charged` bytes may take in: what is left of the
    /// budget, but at least up to the minimum share (so no stream starves while others hold it).
    func room(charged: Int) -> Int {
        max(limitBytes - used.load(ordering: .relaxed), minimumShare - charged, 0)
    }

    /// A buffer's charge changed by `delta` bytes. `resumes`: the buffer itself fell below its mark.
    func charge(_ delta: Int, resumes: Bool = false) {
        guard delta != 0 || resumes else { return }
        let after = used.add(delta, ordering: .relaxed).newValue
        if resumes || (delta < 0 && after < limitBytes && after - delta >= limitBytes) { onRelease?.signal() }
    }
}
