// The per-source state of the stages that hold lines back (partial merge, multiline): stdout
// and stderr are separate sequences that may interleave, so each source seen gets a slot,
// and closed slots are reused.

protocol SourceSlot {
    init()
    var source: [UInt8] { get set }
    var open: Bool { get }
    /// Monotonic ns of the last extension.
    var updated: Int64 { get }
}

extension Array where Element: SourceSlot {
    /// Sources are stdout/stderr in practice; the bound only guards against odd input.
    static var maxSources: Int { 8 }

    func slot(for source: UnsafeRawBufferPointer) -> Int? {
        firstIndex { $0.source.elementsEqual(source) }
    }

    /// With every slot open and no room for another, the least recently extended one: the
    /// caller closes it before `reuse`.
    func leastRecentIfFull() -> Int? {
        guard count >= Self.maxSources, !contains(where: { !$0.open }) else { return nil }
        return indices.min { self[$0].updated < self[$1].updated }
    }

    /// A closed slot (or a new one) now belonging to `source`.
    mutating func reuse(for source: UnsafeRawBufferPointer) -> Int {
        let target: Int
        if let closed = firstIndex(where: { !$0.open }) {
            target = closed
        } else {
            append(Element())
            target = count - 1
        }
        self[target].source.removeAll(keepingCapacity: true)
        self[target].source.append(contentsOf: source)
        return target
    }
}
