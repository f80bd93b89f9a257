// libFuzzer target: the parser of what a NATS server sends
// (NATSServerParser in Sources/LogRelayCore/Sinks/NATS/NATSProtocol.swift).
//
// Input byte 0 picks the line limit and (bit 2) whether the parser reads the PubAcks of a
// JetStream session (replies on "_INBOX.f." with sid 1) in place; the rest is the server's
// byte stream. It is parsed in
// one piece and in small pieces. Checked: no out-of-bounds access or arithmetic overflow
// (a trap is a crash); errors are thrown, never anything else; the ops read in small pieces
// are the ops read in one piece (the small-piece run may stop earlier, at a line longer than
// the limit, which the one-piece run sees whole); an INFO's numbers come back as sent.

struct ParsedOps {
    var ops: [NATSServerOp] = []
    var error: String?
}

func parse(_ bytes: [UInt8], pieces: [Int], maxLine: Int, inbox: [UInt8]) -> ParsedOps {
    var parser = NATSServerParser(maxLineBytes: maxLine)
    parser.replyInbox = inbox
    var out = ParsedOps()
    bytes.withUnsafeBytes { all in
        var pos = 0
        pieceLoop: for n in pieces {
            parser.append(UnsafeRawBufferPointer(rebasing: all[pos..<(pos + n)]))
            pos += n
            while true {
                do throws(NATSProtocolError) {
                    guard let op = try parser.next() else { break }
                    if case .err(let text) = op {
                        fuzzCheck(!text.contains("\n"), "-ERR text spans lines")
                    }
                    out.ops.append(op)
                    fuzzCheck(out.ops.count <= pos, "more ops than bytes")
                } catch {
                    fuzzCheck(!error.message.isEmpty, "error without a message")
                    out.error = error.message
                    break pieceLoop  // the connection is closed on any protocol error
                }
            }
        }
    }
    return out
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNATSServerParser(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let input = UnsafeBufferPointer(start: data, count: size)
    let maxLine = [16, 256, 1 << 20][Int(input[0] % 3)]
    let inbox = input[0] & 4 != 0 ? Array("_INBOX.f.".utf8) : []
    let bytes = Array(input[1...])
    var splitter = FuzzSplitter(seed: seed(input))

    let whole = parse(bytes, pieces: bytes.isEmpty ? [] : [bytes.count], maxLine: maxLine, inbox: inbox)
    let split = parse(bytes, pieces: splitter.pieces(bytes.count), maxLine: maxLine, inbox: inbox)
    fuzzCheck(split.ops.count <= whole.ops.count && Array(whole.ops.prefix(split.ops.count)) == split.ops,
              "split parsing gives ops the one-piece parse does not")
    if split.error == nil {
        fuzzCheck(whole.error == nil && whole.ops == split.ops, "one-piece parse failed or differs where the split parse did not")
    }
    return 0
}
