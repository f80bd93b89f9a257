// What a log stream needs from its sink: a buffer to put encoded events in,
// the largest event the sink accepts, and a way to say "more" or "done".
public protocol StreamSink: Sendable {
    var buffer: EventBuffer { get }
    var maxEventBytes: Int { get }
    func notify()
    /// The stream reached EOF; the sink delivers what is buffered, then forgets the stream.
    func finish()
}

/// A stream publishing to NATS through a (shared) connection.
public struct NATSStreamSink: StreamSink {
    public let publisher: NATSPublisher
    public let connection: NATSConnection

    public init(registry: NATSRegistry, options: NATSOptions, subject: String, name: String, buffer: EventBuffer) {
        publisher = NATSPublisher(buffer: buffer, subject: subject, name: name)
        connection = registry.attach(publisher, options: options)
    }

    public var buffer: EventBuffer { publisher.buffer }
    public var maxEventBytes: Int { connection.maxPayload.load(ordering: .relaxed) }
    public func notify() { connection.notify() }
    public func finish() { connection.finish(publisher) }
}
