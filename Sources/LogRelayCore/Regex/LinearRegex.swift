// A regular expression with RE2/Go `regexp` syntax and linear-time matching, for the
// labels-regex/env-regex options and for per-line matching on the stream thread.
// Patterns are container --log-opt values (any user can send anything), so compiling is
// bounded (pattern bytes, program size, nesting, repeat counts) and matching never
// backtracks: O(input length × program size), with no allocation when the caller keeps a
// `RegexScratch`.

/// Why a pattern was rejected, and where (byte offset into the pattern's UTF-8).
public struct RegexSyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
    public let reason: String
    public let offset: Int

    public init(_ reason: String, at offset: Int) {
        self.reason = reason
        self.offset = offset
    }

    public var description: String { "\(reason) at offset \(offset)" }
}

/// A compiled pattern: immutable, `Sendable`, cheap to copy (arrays are shared).
///
/// Semantics are Go's `regexp.MatchString`: true if the pattern matches anywhere in the
/// input. Input is UTF-8 bytes; a byte that does not start a valid UTF-8 sequence is read as
/// one U+FFFD, as Go does.
public struct LinearRegex: Sendable {
    public static let maxPatternBytes = 4096
    public static let maxInstructions = 10_000

    public let pattern: String
    let program: RegexProgram

    public init(_ pattern: String) throws(RegexSyntaxError) {
        let bytes = Array(pattern.utf8)
        if bytes.count > Self.maxPatternBytes {
            throw RegexSyntaxError("pattern of \(bytes.count) bytes is longer than the limit of \(Self.maxPatternBytes)", at: Self.maxPatternBytes)
        }
        let tree = try RegexParser.parse(bytes)
        self.pattern = pattern
        self.program = try RegexProgram(compiling: tree, limit: Self.maxInstructions)
    }

    /// The hot-path form: no allocation once `scratch` has grown to this program's size.
    /// One scratch serves any number of regexes, one call at a time.
    public func matches(_ bytes: UnsafeRawBufferPointer, using scratch: inout RegexScratch) -> Bool {
        RegexMatcher.run(program, bytes, &scratch)
    }

    /// Allocates a scratch per call: for the control path.
    public func matches(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var scratch = RegexScratch()
        return matches(bytes, using: &scratch)
    }

    public func matches(_ s: String) -> Bool {
        var s = s
        return s.withUTF8 { matches(UnsafeRawBufferPointer($0)) }
    }
}
