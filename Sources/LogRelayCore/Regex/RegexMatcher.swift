// The Pike VM (Thompson NFA simulation, as in RE2 and Go's regexp) over UTF-8 bytes: all
// threads advance together one code point at a time, each instruction at most once per
// position, so time is O(input length × program size) whatever the pattern, and memory is
// the caller's scratch. Only "is there a match" is computed: no captures, and the search
// stops at the first position where any thread reaches `match`.

/// Working memory for matching, owned by the caller (one per thread that matches). It grows
/// once to the largest program it has served and is reused from then on.
public struct RegexScratch: Sendable {
    var storage: [Int32] = []

    public init() {}
}

enum RegexMatcher {
    static func run(_ program: RegexProgram, _ input: UnsafeRawBufferPointer, _ scratch: inout RegexScratch) -> Bool {
        let n = program.insts.count
        // Two thread lists (dense + sparse arrays each) and the closure stack.
        let need = 6 * n + 2
        if scratch.storage.count < need {
            scratch.storage = [Int32](repeating: 0, count: need)
        }
        return program.insts.withUnsafeBufferPointer { insts in
            program.classes.withUnsafeBufferPointer { classes in
                scratch.storage.withUnsafeMutableBufferPointer { memory in
                    let m = memory.baseAddress!
                    let vm = PikeVM(insts: insts.baseAddress!, classes: classes, stack: m + 4 * n,
                                    bytes: input.assumingMemoryBound(to: UInt8.self), hasAssertions: program.hasAssertions)
                    var current = ThreadList(dense: m, sparse: m + n)
                    var next = ThreadList(dense: m + 2 * n, sparse: m + 3 * n)
                    return vm.search(&current, &next, anchored: program.anchoredStart, startBytes: program.startBytes)
                }
            }
        }
    }
}

/// A set of instruction indexes with O(1) insert, test and clear (Briggs–Torczon sparse
/// set), so the memory never needs initialising between positions.
private struct ThreadList {
    let dense: UnsafeMutablePointer<Int32>
    let sparse: UnsafeMutablePointer<Int32>
    var count = 0

    init(dense: UnsafeMutablePointer<Int32>, sparse: UnsafeMutablePointer<Int32>) {
        self.dense = dense
        self.sparse = sparse
    }

    @inline(__always)
    func contains(_ pc: Int32) -> Bool {
        let k = Int(sparse[Int(pc)])
        return k >= 0 && k < count && dense[k] == pc
    }

    @inline(__always)
    mutating func insert(_ pc: Int32) {
        sparse[Int(pc)] = Int32(count)
        dense[count] = pc
        count += 1
    }
}

private struct PikeVM {
    let insts: UnsafePointer<RegexInst>
    let classes: UnsafeBufferPointer<CharClass>
    let stack: UnsafeMutablePointer<Int32>
    let bytes: UnsafeBufferPointer<UInt8>
    let hasAssertions: Bool

    func search(_ current: inout ThreadList, _ next: inout ThreadList, anchored: Bool, startBytes: [UInt64]?) -> Bool {
        let len = bytes.count
        var pos = 0
        var context = self.context(0)
        while true {
            if current.count == 0 {
                if anchored && pos > 0 { return false }
                if let start = startBytes {
                    // No thread is alive: jump to the next byte a match can start with.
                    let p = bytes.baseAddress
                    while pos < len {
                        let b = p![pos]
                        if start[Int(b >> 6)] >> UInt64(b & 63) & 1 != 0 { break }
                        pos += b < 0x80 ? 1 : UTF8Decoding.decodeMultiByte(p!, pos, len).1
                    }
                    if pos == len { return false }
                    context = self.context(pos)
                }
            }
            if !anchored || pos == 0 {
                if add(&current, 0, context) { return true }
            }
            if pos >= len { return false }
            let (r, width) = UTF8Decoding.decode(bytes.baseAddress!, pos, len)
            let nextContext = hasAssertions ? self.context(pos + width) : 0
            next.count = 0
            for k in 0..<current.count {
                let pc = Int(current.dense[k])
                let inst = insts[pc]
                let hit: Bool
                switch inst.op {
                case .rune:
                    hit = r == UInt32(bitPattern: inst.x)
                case .charClass:
                    if r < 64 {
                        hit = inst.ascii.low >> UInt64(r) & 1 != 0
                    } else if r < 128 {
                        hit = inst.ascii.high >> UInt64(r - 64) & 1 != 0
                    } else {
                        hit = classes[Int(inst.x)].slowContains(r)
                    }
                case .any:
                    hit = true
                case .anyNotNewline:
                    hit = r != 0x0A
                case .split, .jump, .assertion, .match:
                    continue
                }
                if hit && add(&next, Int32(pc + 1), nextContext) { return true }
            }
            swap(&current, &next)
            pos += width
            context = nextContext
        }
    }

    /// Adds `pc` and everything reachable from it without consuming input; true if that
    /// reaches `match`.
    private func add(_ list: inout ThreadList, _ pc: Int32, _ context: UInt8) -> Bool {
        var top = 1
        stack[0] = pc
        while top > 0 {
            top -= 1
            let pc = stack[top]
            if list.contains(pc) { continue }
            list.insert(pc)
            let inst = insts[Int(pc)]
            switch inst.op {
            case .split:
                stack[top] = inst.y
                stack[top + 1] = inst.x
                top += 2
            case .jump:
                stack[top] = inst.x
                top += 1
            case .assertion:
                if context & UInt8(inst.x) != 0 {
                    stack[top] = pc + 1
                    top += 1
                }
            case .match:
                return true
            case .rune, .charClass, .any, .anyNotNewline:
                break
            }
        }
        return false
    }

    /// Which `RegexAssertion`s hold at `pos` (between bytes pos-1 and pos).
    private func context(_ pos: Int) -> UInt8 {
        let len = bytes.count
        let before = pos > 0 ? Int(bytes[pos - 1]) : -1
        let after = pos < len ? Int(bytes[pos]) : -1
        var c: UInt8 = 0
        if pos == 0 { c |= RegexAssertion.beginText.rawValue | RegexAssertion.beginLine.rawValue }
        if before == 0x0A { c |= RegexAssertion.beginLine.rawValue }
        if pos == len { c |= RegexAssertion.endText.rawValue | RegexAssertion.endLine.rawValue }
        if after == 0x0A { c |= RegexAssertion.endLine.rawValue }
        // RE2's \b is ASCII: a word byte is never part of a multi-byte sequence.
        c |= isWord(before) != isWord(after) ? RegexAssertion.wordBoundary.rawValue : RegexAssertion.notWordBoundary.rawValue
        return c
    }

    @inline(__always)
    private func isWord(_ b: Int) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x5F
    }
}
