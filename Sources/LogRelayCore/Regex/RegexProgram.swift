// Syntax tree → a Thompson-NFA instruction program (as in RE2 and Go's regexp), plus what
// the matcher derives from it once: whether every match must start at offset 0, and which
// bytes a match can start with, so that the search skips other bytes without running threads.

struct RegexInst: Sendable {
    enum Op: UInt8, Sendable {
        /// Consumes one code point equal to `x`.
        case rune
        /// Consumes one code point in class `x` (ASCII answered by `ascii`).
        case charClass
        case any
        case anyNotNewline
        /// Continues at both `x` and `y`.
        case split
        case jump
        /// Continues if the position satisfies `RegexAssertion(rawValue: x)`.
        case assertion
        case match
    }
    var op: Op
    var x: Int32 = 0
    var y: Int32 = 0
    /// For `charClass`: membership of U+0000...U+007F, kept here so ASCII input never
    /// touches the class table.
    var ascii: (low: UInt64, high: UInt64) = (0, 0)
}

struct RegexProgram: Sendable {
    private(set) var insts: [RegexInst] = []
    private(set) var classes: [CharClass] = []
    /// Every path from the start passes \A (or ^ without (?m)) before consuming anything.
    private(set) var anchoredStart = false
    /// Bytes a match can start with: bit b of `startBytes[b >> 6]`; nil when a match can
    /// be empty or start with almost anything.
    private(set) var startBytes: [UInt64]?
    /// Whether the matcher must work out line and word context at each position.
    private(set) var hasAssertions = false
    private let limit: Int

    init(compiling tree: RegexNode, limit: Int) throws(RegexSyntaxError) {
        self.limit = limit
        try emit(tree)
        _ = try append(RegexInst(op: .match))
        hasAssertions = insts.contains { $0.op == .assertion }
        anchoredStart = startIsAnchored()
        startBytes = possibleStartBytes()
    }

    private mutating func append(_ inst: RegexInst) throws(RegexSyntaxError) -> Int {
        if insts.count >= limit {
            throw RegexSyntaxError("pattern too large: it compiles to more than \(limit) instructions", at: 0)
        }
        insts.append(inst)
        return insts.count - 1
    }

    private mutating func emit(_ node: RegexNode) throws(RegexSyntaxError) {
        switch node {
        case .empty:
            break
        case .rune(let r):
            _ = try append(RegexInst(op: .rune, x: Int32(bitPattern: r)))
        case .charClass(let cls):
            classes.append(cls)
            _ = try append(RegexInst(op: .charClass, x: Int32(classes.count - 1), ascii: cls.ascii))
        case .any(let newline):
            _ = try append(RegexInst(op: newline ? .any : .anyNotNewline))
        case .assertion(let a):
            _ = try append(RegexInst(op: .assertion, x: Int32(a.rawValue)))
        case .concat(let subs):
            for s in subs { try emit(s) }
        case .alternate(let subs):
            var exits: [Int] = []
            for s in subs.dropLast() {
                let split = try append(RegexInst(op: .split))
                insts[split].x = Int32(split + 1)
                try emit(s)
                exits.append(try append(RegexInst(op: .jump)))
                insts[split].y = Int32(insts.count)
            }
            try emit(subs[subs.count - 1])
            for e in exits { insts[e].x = Int32(insts.count) }
        case .repetition(let sub, let min, let max, _):
            if max == -1 {
                if min == 0 {
                    // L: split L+1, out; sub; jump L
                    let split = try append(RegexInst(op: .split))
                    insts[split].x = Int32(split + 1)
                    try emit(sub)
                    _ = try append(RegexInst(op: .jump, x: Int32(split)))
                    insts[split].y = Int32(insts.count)
                } else {
                    for _ in 0..<(min - 1) { try emit(sub) }
                    // L: sub; split L, out
                    let loop = insts.count
                    try emit(sub)
                    let split = try append(RegexInst(op: .split, x: Int32(loop)))
                    insts[split].y = Int32(split + 1)
                }
            } else {
                for _ in 0..<min { try emit(sub) }
                // Each optional copy may be skipped to the end: x{2,4} is xx(x(x)?)?.
                var skips: [Int] = []
                for _ in 0..<(max - min) {
                    let split = try append(RegexInst(op: .split))
                    insts[split].x = Int32(split + 1)
                    skips.append(split)
                    try emit(sub)
                }
                for s in skips { insts[s].y = Int32(insts.count) }
            }
        }
    }

    /// Follows the empty transitions from the start; `visit` sees each instruction once
    /// and returns whether to follow on past it.
    private func walkFromStart(_ visit: (RegexInst) -> Bool) {
        var seen = [Bool](repeating: false, count: insts.count)
        var stack = [0]
        while let pc = stack.popLast() {
            if seen[pc] { continue }
            seen[pc] = true
            let inst = insts[pc]
            guard visit(inst) else { continue }
            switch inst.op {
            case .split: stack.append(Int(inst.y)); stack.append(Int(inst.x))
            case .jump: stack.append(Int(inst.x))
            case .assertion: stack.append(pc + 1)
            default: break
            }
        }
    }

    private func startIsAnchored() -> Bool {
        var anchored = true
        walkFromStart { inst in
            switch inst.op {
            case .assertion where inst.x == Int32(RegexAssertion.beginText.rawValue): return false
            case .split, .jump, .assertion: return true
            default:
                anchored = false
                return false
            }
        }
        return anchored
    }

    private func possibleStartBytes() -> [UInt64]? {
        var bits: [UInt64] = [0, 0, 0, 0]
        var useful = true
        walkFromStart { inst in
            switch inst.op {
            case .split, .jump, .assertion:
                return true
            case .rune:
                let r = UInt32(bitPattern: inst.x)
                if r < 0x80 {
                    bits[Int(r >> 6)] |= 1 << UInt64(r & 63)
                } else {
                    bits[2] = .max
                    bits[3] = .max
                }
            case .charClass:
                bits[0] |= inst.ascii.low
                bits[1] |= inst.ascii.high
                if classes[Int(inst.x)].mayMatchNonASCII {
                    bits[2] = .max
                    bits[3] = .max
                }
            case .any, .anyNotNewline, .match:
                useful = false
            }
            return false
        }
        let all = bits[0] == .max && bits[1] == .max && bits[2] == .max && bits[3] == .max
        return useful && !all ? bits : nil
    }
}
