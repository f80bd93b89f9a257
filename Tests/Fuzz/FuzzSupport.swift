// Shared by every libFuzzer target in Tests/Fuzz (compiled into each one; see build.sh).

/// Splits an input into the pieces a socket or pipe might deliver, deterministically from
/// a seed, so the same input always reproduces the same split.
struct FuzzSplitter {
    private var state: UInt64

    init(seed: UInt64) { state = seed | 1 }

    /// xorshift64*
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }

    /// Piece lengths covering `count` bytes: mostly tiny pieces (1–8 bytes, to cut every
    /// header and varint), sometimes larger ones.
    mutating func pieces(_ count: Int) -> [Int] {
        var out: [Int] = []
        var left = count
        while left > 0 {
            let r = next()
            let n = r & 3 == 0 ? Int((r >> 8) % 4096) + 1 : Int((r >> 8) % 8) + 1
            out.append(min(n, left))
            left -= out[out.count - 1]
        }
        return out
    }
}

/// A seed for the splitter, from the whole input (FNV-1a).
func seed(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    return h
}

/// Fails the run (libFuzzer reports it as a crash and saves the input) with a message.
@inline(never)
func fuzzCheck(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() {
        fatalError("fuzz invariant violated: \(message())")
    }
}
