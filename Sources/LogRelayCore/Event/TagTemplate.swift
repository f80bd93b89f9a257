// Docker's log-tag markup (a subset of Go's text/template over logger.Info), used for
// `tag` and `nats-subject`. Parsed and type-checked once at StartLogging, so every
// mistake (unknown field or function, wrong argument type, bad syntax) fails the
// container start with a clear message instead of producing odd tags later.
//
// Supported: literal text, {{.Field}} / {{.Map.key}}, string ("..." and `raw`) and
// integer literals, function calls, pipelines (`a | f x` calls `f x a`), parentheses,
// trim markers `{{- ` / ` -}}` and comments `{{/* */}}`. Functions: index json split
// join title lower upper pad truncate, with Docker's semantics (protocol doc §6.1).
// Deviation from Go: a missing map key in `.Map.key` renders "" (Go prints "<no value>").

public struct TagTemplate: Sendable {
    public let source: String
    let parts: [Part]

    /// Docker's default for built-in drivers.
    public static let defaultTag = TagTemplate(source: "{{.ID}}", parts: [.action(.field(.ID))])

    public init(_ source: String) throws(OptionError) {
        try self.init(source, context: "template")
    }

    /// `context` names what is parsed ("tag", "nats-subject") in the error message.
    init(_ source: String, context: String) throws(OptionError) {
        do throws(Failure) {
            var parser = Parser(Array(source.utf8))
            self.init(source: source, parts: try parser.parse())
        } catch {
            throw OptionError("invalid \(context) \(OptionError.quote(source)): \(error.reason)")
        }
    }

    init(source: String, parts: [Part]) {
        self.source = source
        self.parts = parts
    }

    /// The text when the template has no markup (it renders the same for every container).
    var literalValue: String? {
        var s = ""
        for p in parts {
            guard case .text(let t) = p else { return nil }
            s += t
        }
        return s
    }

    /// Longest rendered template, and longest value a function may return. The template is the
    /// container's own log option: without a bound, `{{pad .Name 21000000000 0}}` or a chain of
    /// `json` calls asks for gigabytes and takes the plugin, and every other container, down.
    static let maxRenderedBytes = 64 * 1024

    public func render(_ info: ContainerInfo, hostname: String) throws(OptionError) -> String {
        var out = ""
        do throws(Failure) {
            for p in parts {
                switch p {
                case .text(let t): out += t
                case .action(let e): out += try e.evaluate(info, hostname: hostname).printed
                }
                if out.utf8.count > Self.maxRenderedBytes {
                    throw Failure("the result is longer than \(Self.maxRenderedBytes) bytes")
                }
            }
        } catch {
            throw OptionError("cannot render template \(OptionError.quote(source)): \(error.reason)")
        }
        return out
    }

    // MARK: model

    struct Failure: Error {
        let reason: String
        init(_ r: String) { reason = r }
    }

    enum Part: Sendable {
        case text(String)
        case action(Expr)
    }

    enum ValueType: String, Sendable {
        case string, list = "list of strings", map = "map of strings", int = "integer"
    }

    enum Value {
        case string(String), list([String]), map([String: String]), int(Int)

        /// About what `printed` takes, in UTF-8 bytes (separators not counted).
        var byteCount: Int {
            switch self {
            case .string(let s): return s.utf8.count
            case .int: return 20
            case .list(let l): return l.reduce(0) { $0 + $1.utf8.count }
            case .map(let m): return m.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count }
            }
        }

        /// As Go's fmt prints it: lists as [a b], maps as map[k:v] with sorted keys.
        var printed: String {
            switch self {
            case .string(let s): return s
            case .int(let i): return String(i)
            case .list(let l): return "[" + l.joined(separator: " ") + "]"
            case .map(let m):
                return "map[" + TagTemplate.sortedKeys(m).map { "\($0):\(m[$0]!)" }.joined(separator: " ") + "]"
            }
        }
    }

    enum Field: String, CaseIterable, Sendable {
        // Methods of logger.Info.
        case ID, FullID, Name, ImageID, ImageFullID, ImageName, Command, Hostname
        // Fields of logger.Info.
        case Config, ContainerID, ContainerName, ContainerEntrypoint, ContainerArgs, ContainerImageID,
             ContainerImageName, ContainerCreated, ContainerEnv, ContainerLabels, LogPath, DaemonName

        var type: ValueType {
            switch self {
            case .Config, .ContainerLabels: return .map
            case .ContainerArgs, .ContainerEnv: return .list
            default: return .string
            }
        }

        func value(_ i: ContainerInfo, hostname: String) -> Value {
            switch self {
            case .ID: return .string(TagTemplate.prefixBytes(i.containerID, 12))
            case .FullID, .ContainerID: return .string(i.containerID)
            case .Name: return .string(i.containerName.hasPrefix("/") ? String(i.containerName.dropFirst()) : i.containerName)
            case .ImageID:
                // Docker ≥ master: drop the "sha256:" (any "algo:") prefix, then 12 characters.
                let id = i.containerImageID
                let hex = id.firstIndex(of: ":").map { String(id[id.index(after: $0)...]) } ?? id
                return .string(TagTemplate.prefixBytes(hex, 12))
            case .ImageFullID, .ContainerImageID: return .string(i.containerImageID)
            case .ImageName, .ContainerImageName: return .string(i.containerImageName)
            case .Command: return .string(([i.containerEntrypoint] + i.containerArgs).joined(separator: " "))
            case .Hostname: return .string(hostname)
            case .Config: return .map(i.config)
            case .ContainerName: return .string(i.containerName)
            case .ContainerEntrypoint: return .string(i.containerEntrypoint)
            case .ContainerArgs: return .list(i.containerArgs)
            case .ContainerCreated: return .string(i.containerCreated)
            case .ContainerEnv: return .list(i.containerEnv)
            case .ContainerLabels: return .map(i.containerLabels)
            case .LogPath: return .string(i.logPath)
            case .DaemonName: return .string(i.daemonName)
            }
        }
    }

    enum Function: String, CaseIterable, Sendable {
        case index, json, split, join, title, lower, upper, pad, truncate

        /// Type-checks a call; returns the result type (Go checks arity and types the same way, at run time).
        func check(_ args: [ValueType]) throws(Failure) -> ValueType {
            let want: Int
            switch self {
            case .index, .split, .join, .truncate: want = 2
            case .json, .title, .lower, .upper: want = 1
            case .pad: want = 3
            }
            guard args.count == want else {
                throw Failure("wrong number of arguments for \(rawValue): want \(want), got \(args.count)")
            }
            func expect(_ types: [ValueType]) throws(Failure) {
                for (n, (got, exp)) in zip(args, types).enumerated() where got != exp {
                    throw Failure("argument \(n + 1) of \(rawValue) must be a \(exp.rawValue), not a \(got.rawValue)")
                }
            }
            switch self {
            case .index:
                switch (args[0], args[1]) {
                case (.map, .string), (.list, .int): return .string
                default: throw Failure("index needs a map and a string key, or a list and an integer (got \(args[0].rawValue) and \(args[1].rawValue))")
                }
            case .json: return .string
            case .split: try expect([.string, .string]); return .list
            case .join: try expect([.list, .string]); return .string
            case .title, .lower, .upper: try expect([.string]); return .string
            case .pad: try expect([.string, .int, .int]); return .string
            case .truncate: try expect([.string, .int]); return .string
            }
        }

        /// Refuses a result longer than a whole rendered template may be (checked before
        /// allocating where the size is known in advance: pad, join).
        static func checkSize(_ bytes: Int, of f: Function) throws(Failure) {
            guard bytes <= TagTemplate.maxRenderedBytes else {
                throw Failure("error calling \(f.rawValue): result longer than \(TagTemplate.maxRenderedBytes) bytes")
            }
        }

        func call(_ a: [Value]) throws(Failure) -> Value {
            switch (self, a.count) {
            case (.index, 2):
                if case .map(let m) = a[0], case .string(let k) = a[1] { return .string(m[k] ?? "") }
                if case .list(let l) = a[0], case .int(let n) = a[1] {
                    guard l.indices.contains(n) else { throw Failure("error calling index: index out of range: \(n)") }
                    return .string(l[n])
                }
            case (.json, 1):
                return .string(TagTemplate.json(a[0]))
            case (.split, 2):
                if case .string(let s) = a[0], case .string(let sep) = a[1] { return .list(TagTemplate.goSplit(s, sep)) }
            case (.join, 2):
                if case .list(let l) = a[0], case .string(let sep) = a[1] {
                    try Function.checkSize(a[0].byteCount + sep.utf8.count * max(l.count - 1, 0), of: self)
                    return .string(l.joined(separator: sep))
                }
            case (.title, 1):
                if case .string(let s) = a[0] { return .string(TagTemplate.goTitle(s)) }
            case (.lower, 1):
                if case .string(let s) = a[0] { return .string(TagTemplate.mapScalars(s) { $0.properties.lowercaseMapping }) }
            case (.upper, 1):
                if case .string(let s) = a[0] { return .string(TagTemplate.mapScalars(s) { $0.properties.uppercaseMapping }) }
            case (.pad, 3):
                if case .string(let s) = a[0], case .int(let pre) = a[1], case .int(let post) = a[2] {
                    guard pre >= 0, post >= 0 else { throw Failure("error calling pad: negative count") }
                    if s.isEmpty { return .string("") }
                    try Function.checkSize(pre > TagTemplate.maxRenderedBytes || post > TagTemplate.maxRenderedBytes
                                           ? Int.max : s.utf8.count + pre + post, of: self)
                    return .string(String(repeating: " ", count: pre) + s + String(repeating: " ", count: post))
                }
            case (.truncate, 2):
                if case .string(let s) = a[0], case .int(let n) = a[1] {
                    guard n >= 0 else { throw Failure("error calling truncate: negative length \(n)") }
                    return .string(TagTemplate.prefixBytes(s, n))
                }
            default:
                break
            }
            throw Failure("internal error: \(rawValue) called with unchecked arguments")
        }
    }

    indirect enum Expr: Sendable {
        case string(String)
        case int(Int)
        case field(Field)
        /// `.Config.key`: a map entry selected by a field chain.
        case key(Expr, String)
        case call(Function, [Expr])

        var type: ValueType {
            switch self {
            case .string, .key: return .string
            case .int: return .int
            case .field(let f): return f.type
            case .call(let f, let args): return (try? f.check(args.map(\.type))) ?? .string
            }
        }

        func evaluate(_ info: ContainerInfo, hostname: String) throws(Failure) -> Value {
            switch self {
            case .string(let s): return .string(s)
            case .int(let i): return .int(i)
            case .field(let f): return f.value(info, hostname: hostname)
            case .key(let base, let k):
                if case .map(let m) = try base.evaluate(info, hostname: hostname) { return .string(m[k] ?? "") }
                throw Failure("internal error: key lookup on a non-map")
            case .call(let f, let args):
                var values: [Value] = []
                for a in args { values.append(try a.evaluate(info, hostname: hostname)) }
                let result = try f.call(values)
                try Function.checkSize(result.byteCount, of: f)
                return result
            }
        }
    }

    // MARK: lexer and parser

    enum Token: Equatable {
        case fields([String]), ident(String), string(String), int(Int), pipe, lparen, rparen, dot
    }

    struct Parser {
        let b: [UInt8]
        init(_ bytes: [UInt8]) { b = bytes }

        static func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D }
        static func isIdentStart(_ c: UInt8) -> Bool {
            (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == UInt8(ascii: "_")
        }
        static func isIdent(_ c: UInt8) -> Bool { isIdentStart(c) || (c >= 0x30 && c <= 0x39) }

        func starts(_ lit: String, at i: Int) -> Bool {
            let l = Array(lit.utf8)
            return i + l.count <= b.count && Array(b[i..<(i + l.count)]) == l
        }

        func find(_ lit: String, from i: Int) -> Int? {
            var k = i
            while k < b.count {
                if starts(lit, at: k) { return k }
                k += 1
            }
            return nil
        }

        func text(_ r: Range<Int>) -> String { String(decoding: b[r], as: UTF8.self) }

        mutating func parse() throws(Failure) -> [Part] {
            var parts: [Part] = []
            var i = 0
            var trimNext = false
            while true {
                let open = find("{{", from: i) ?? b.count
                var lo = i, hi = open
                if trimNext { while lo < hi && Parser.isSpace(b[lo]) { lo += 1 } }
                guard open < b.count else {
                    if lo < hi { parts.append(.text(text(lo..<hi))) }
                    return parts
                }
                var j = open + 2
                // "{{- " trims the text before; "{{-3}}" is the number -3.
                if j + 1 < b.count && b[j] == UInt8(ascii: "-") && Parser.isSpace(b[j + 1]) {
                    j += 2
                    while hi > lo && Parser.isSpace(b[hi - 1]) { hi -= 1 }
                }
                if lo < hi { parts.append(.text(text(lo..<hi))) }

                if starts("/*", at: j) {
                    guard let end = find("*/", from: j + 2) else { throw Failure("unclosed comment") }
                    let after = end + 2
                    if starts(" -}}", at: after) {
                        i = after + 4; trimNext = true
                    } else if starts("}}", at: after) {
                        i = after + 2; trimNext = false
                    } else {
                        throw Failure("comment ends before closing delimiter")
                    }
                    continue
                }
                let (tokens, next, trimRight) = try lexAction(from: j)
                var pos = 0
                guard !tokens.isEmpty else { throw Failure("empty action {{}}") }
                let expr = try parsePipeline(tokens, &pos, depth: 0)
                if pos < tokens.count { throw Failure("unexpected \(describe(tokens[pos])) in action") }
                parts.append(.action(expr))
                i = next
                trimNext = trimRight
            }
        }

        /// Tokens up to "}}" or " -}}"; returns the index after the delimiter.
        func lexAction(from start: Int) throws(Failure) -> ([Token], Int, Bool) {
            var tokens: [Token] = []
            var i = start
            while true {
                let spaceStart = i
                while i < b.count && Parser.isSpace(b[i]) { i += 1 }
                guard i < b.count else { throw Failure("unclosed action: missing }}") }
                if i > spaceStart && starts("-}}", at: i) { return (tokens, i + 3, true) }
                if starts("}}", at: i) { return (tokens, i + 2, false) }
                let c = b[i]
                switch c {
                case UInt8(ascii: "|"): tokens.append(.pipe); i += 1
                case UInt8(ascii: "("): tokens.append(.lparen); i += 1
                case UInt8(ascii: ")"): tokens.append(.rparen); i += 1
                case UInt8(ascii: "\""):
                    let (s, next) = try lexQuoted(from: i)
                    tokens.append(.string(s)); i = next
                case UInt8(ascii: "`"):
                    guard let end = b[(i + 1)...].firstIndex(of: UInt8(ascii: "`")) else {
                        throw Failure("unterminated raw string")
                    }
                    tokens.append(.string(text((i + 1)..<end))); i = end + 1
                case UInt8(ascii: "."):
                    if i + 1 < b.count && Parser.isIdentStart(b[i + 1]) {
                        // A chain like .ContainerLabels.team is one token (adjacent, no spaces).
                        var names: [String] = []
                        while i + 1 < b.count && b[i] == UInt8(ascii: ".") && Parser.isIdentStart(b[i + 1]) {
                            var k = i + 1
                            while k < b.count && Parser.isIdent(b[k]) { k += 1 }
                            names.append(text((i + 1)..<k)); i = k
                        }
                        tokens.append(.fields(names))
                    } else if i + 1 < b.count && b[i + 1] >= 0x30 && b[i + 1] <= 0x39 {
                        throw Failure("only whole numbers are supported")
                    } else {
                        tokens.append(.dot); i += 1
                    }
                case UInt8(ascii: "$"):
                    throw Failure("variables ($) are not supported")
                case UInt8(ascii: "'"):
                    throw Failure("character constants are not supported; use a \"string\"")
                case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "+"):
                    var k = i + 1
                    while k < b.count && (Parser.isIdent(b[k]) || b[k] == UInt8(ascii: ".")) { k += 1 }
                    let t = text(i..<k)
                    guard let n = Parser.parseInt(t) else {
                        throw Failure("bad number \(OptionError.quote(t)): only whole numbers are supported")
                    }
                    tokens.append(.int(n)); i = k
                default:
                    guard Parser.isIdentStart(c) else {
                        throw Failure("unexpected character \(OptionError.quote(text(i..<min(i + 1, b.count)))) in action")
                    }
                    var k = i
                    while k < b.count && Parser.isIdent(b[k]) { k += 1 }
                    tokens.append(.ident(text(i..<k))); i = k
                }
            }
        }

        static func parseInt(_ t: String) -> Int? {
            var s = Substring(t.replacing("_", with: ""))
            var negative = false
            if s.hasPrefix("-") || s.hasPrefix("+") { negative = s.first == "-"; s = s.dropFirst() }
            guard let f = s.first, f.isASCII, f.isNumber else { return nil }
            var radix = 10
            if s.count > 2 && s.hasPrefix("0") {
                switch s.dropFirst().first {
                case "x", "X": radix = 16; s = s.dropFirst(2)
                case "o", "O": radix = 8; s = s.dropFirst(2)
                case "b", "B": radix = 2; s = s.dropFirst(2)
                default: break
                }
            }
            guard let v = Int(s, radix: radix) else { return nil }
            return negative ? -v : v
        }

        /// A Go interpreted string literal: \a \b \f \n \r \t \v \\ \" \ooo \xHH \uHHHH \UHHHHHHHH.
        func lexQuoted(from start: Int) throws(Failure) -> (String, Int) {
            var out: [UInt8] = []
            var i = start + 1
            func hex(_ count: Int) throws(Failure) -> UInt32 {
                guard i + count <= b.count else { throw Failure("unterminated quoted string") }
                var v: UInt32 = 0
                for k in 0..<count {
                    guard let d = NATSServerURL.hexValue(b[i + k]) else { throw Failure("invalid escape in quoted string") }
                    v = v << 4 | UInt32(d)
                }
                i += count
                return v
            }
            while true {
                guard i < b.count, b[i] != 0x0A else { throw Failure("unterminated quoted string") }
                let c = b[i]
                i += 1
                if c == UInt8(ascii: "\"") { break }
                guard c == UInt8(ascii: "\\") else { out.append(c); continue }
                guard i < b.count else { throw Failure("unterminated quoted string") }
                let e = b[i]
                i += 1
                switch e {
                case UInt8(ascii: "a"): out.append(0x07)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "v"): out.append(0x0B)
                case UInt8(ascii: "\\"), UInt8(ascii: "\""): out.append(e)
                case UInt8(ascii: "x"): out.append(UInt8(try hex(2)))
                case UInt8(ascii: "0")...UInt8(ascii: "7"):
                    guard i + 2 <= b.count, let v = UInt8(text((i - 1)..<(i + 2)), radix: 8) else {
                        throw Failure("invalid octal escape in quoted string")
                    }
                    out.append(v); i += 2
                case UInt8(ascii: "u"), UInt8(ascii: "U"):
                    let v = try hex(e == UInt8(ascii: "u") ? 4 : 8)
                    guard let scalar = Unicode.Scalar(v) else { throw Failure("invalid Unicode escape in quoted string") }
                    out.append(contentsOf: Array(String(scalar).utf8))
                default:
                    throw Failure("unknown escape sequence \(OptionError.quote("\\" + text((i - 1)..<i))) in quoted string")
                }
            }
            guard let s = String(validating: out, as: UTF8.self) else {
                throw Failure("quoted string is not valid UTF-8")
            }
            return (s, i)
        }

        func describe(_ t: Token) -> String {
            switch t {
            case .fields(let f): return "." + f.joined(separator: ".")
            case .ident(let s): return OptionError.quote(s)
            case .string(let s): return OptionError.quote(s)
            case .int(let n): return String(n)
            case .pipe: return "\"|\""
            case .lparen: return "\"(\""
            case .rparen: return "\")\""
            case .dot: return "\".\""
            }
        }

        /// pipeline := command ("|" command)*; each later command gets the previous result as its last argument.
        func parsePipeline(_ t: [Token], _ pos: inout Int, depth: Int) throws(Failure) -> Expr {
            // Bounds the recursion (parsing, type checks, rendering) for hostile input.
            guard depth <= 32 else { throw Failure("parentheses nested too deeply") }
            var result = try parseCommand(t, &pos, piped: nil, depth: depth)
            while pos < t.count && t[pos] == .pipe {
                pos += 1
                result = try parseCommand(t, &pos, piped: result, depth: depth)
            }
            return result
        }

        func parseCommand(_ t: [Token], _ pos: inout Int, piped: Expr?, depth: Int) throws(Failure) -> Expr {
            var function: Function?
            var args: [Expr] = []
            var first = true
            while pos < t.count && t[pos] != .pipe && t[pos] != .rparen {
                let tok = t[pos]
                pos += 1
                switch tok {
                case .ident(let name):
                    guard first else {
                        throw Failure("function \(OptionError.quote(name)) used as an argument; wrap the call in parentheses")
                    }
                    function = try Parser.function(name)
                case .fields(let names):
                    args.append(try Parser.fieldExpr(names))
                case .string(let s): args.append(.string(s))
                case .int(let n): args.append(.int(n))
                case .lparen:
                    let inner = try parsePipeline(t, &pos, depth: depth + 1)
                    guard pos < t.count && t[pos] == .rparen else { throw Failure("unclosed left parenthesis") }
                    pos += 1
                    args.append(inner)
                case .dot:
                    throw Failure("{{.}} (the whole container info) is not supported; use a field such as .Name")
                case .pipe, .rparen:
                    break
                }
                first = false
            }
            guard let function else {
                guard !args.isEmpty else {
                    throw Failure(piped == nil ? "missing value in action" : "missing command after \"|\"")
                }
                guard args.count == 1 else { throw Failure("cannot give arguments to a non-function value") }
                guard piped == nil else {
                    throw Failure("a value cannot follow \"|\"; only a function call can")
                }
                return args[0]
            }
            if let piped { args.append(piped) }
            _ = try function.check(args.map(\.type))
            return .call(function, args)
        }

        static let unsupportedKeywords: Set<String> = ["if", "else", "end", "range", "with", "define", "template",
                                                      "block", "break", "continue", "nil", "true", "false"]
        static let unsupportedBuiltins: Set<String> = ["and", "or", "not", "len", "slice", "print", "printf", "println",
                                                      "eq", "ne", "lt", "le", "gt", "ge", "html", "js", "urlquery", "call"]

        static func function(_ name: String) throws(Failure) -> Function {
            if let f = Function(rawValue: name) { return f }
            let supported = Function.allCases.map(\.rawValue).joined(separator: " ")
            if unsupportedKeywords.contains(name) {
                throw Failure("\(OptionError.quote(name)) is not supported in log tags")
            }
            if unsupportedBuiltins.contains(name) {
                throw Failure("function \(OptionError.quote(name)) is not supported (supported: \(supported))")
            }
            throw Failure("function \(OptionError.quote(name)) not defined (supported: \(supported))")
        }

        static func fieldExpr(_ names: [String]) throws(Failure) -> Expr {
            guard let f = Field(rawValue: names[0]) else {
                if names[0] == "ExtraAttributes" {
                    throw Failure(".ExtraAttributes is not supported; use the labels/env log options")
                }
                let valid = Field.allCases.map { "." + $0.rawValue }.joined(separator: " ")
                throw Failure("unknown field .\(names[0]) (valid: \(valid))")
            }
            var e = Expr.field(f)
            for name in names.dropFirst() {
                guard e.type == .map, case .field = e else {
                    throw Failure("cannot select .\(name) from .\(names[0]), a \(e.type.rawValue)")
                }
                e = .key(e, name)
            }
            return e
        }
    }

    // MARK: Go string functions

    static func sortedKeys(_ m: [String: String]) -> [String] {
        m.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    /// At most `n` UTF-8 bytes, cut back to a character boundary so the result stays valid.
    static func prefixBytes(_ s: String, _ n: Int) -> String {
        let u = Array(s.utf8)
        if u.count <= n { return s }
        var end = n
        while end > 0 && u[end] & 0xC0 == 0x80 { end -= 1 }
        return String(decoding: u[..<end], as: UTF8.self)
    }

    /// strings.Split: "" separator splits into characters (runes); "" input gives [""].
    static func goSplit(_ s: String, _ sep: String) -> [String] {
        if sep.isEmpty { return s.unicodeScalars.map { String($0) } }
        let u = Array(s.utf8), p = Array(sep.utf8)
        var out: [String] = []
        var start = 0, i = 0
        while i + p.count <= u.count {
            if u[i..<(i + p.count)].elementsEqual(p) {
                out.append(String(decoding: u[start..<i], as: UTF8.self))
                i += p.count
                start = i
            } else {
                i += 1
            }
        }
        out.append(String(decoding: u[start...], as: UTF8.self))
        return out
    }

    /// Per-scalar simple case mapping, like Go's unicode.ToUpper/ToLower (no "ß" → "SS").
    static func mapScalars(_ s: String, _ mapping: (Unicode.Scalar) -> String) -> String {
        var out = String.UnicodeScalarView()
        for u in s.unicodeScalars {
            let m = mapping(u).unicodeScalars
            out.append(m.count == 1 ? m.first! : u)
        }
        return String(out)
    }

    /// strings.Title: upper-case (title-case) the first letter of every word.
    static func goTitle(_ s: String) -> String {
        func isSeparator(_ u: Unicode.Scalar) -> Bool {
            if u.isASCII {
                let c = u.value
                return !((c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x5F)
            }
            switch u.properties.generalCategory {
            case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter, .decimalNumber:
                return false
            default:
                return u.properties.isWhitespace
            }
        }
        var out = String.UnicodeScalarView()
        var prevIsSeparator = true
        for u in s.unicodeScalars {
            if prevIsSeparator {
                let m = u.properties.titlecaseMapping.unicodeScalars
                out.append(m.count == 1 ? m.first! : u)
            } else {
                out.append(u)
            }
            prevIsSeparator = isSeparator(u)
        }
        return String(out)
    }

    /// encoding/json with SetEscapeHTML(false), as Docker's `json` function.
    static func json(_ v: Value) -> String {
        switch v {
        case .string(let s): return jsonString(s)
        case .int(let i): return String(i)
        case .list(let l): return "[" + l.map(jsonString).joined(separator: ",") + "]"
        case .map(let m): return "{" + sortedKeys(m).map { jsonString($0) + ":" + jsonString(m[$0]!) }.joined(separator: ",") + "}"
        }
    }

    static func jsonString(_ s: String) -> String { JSONText.quote(s) }
}
