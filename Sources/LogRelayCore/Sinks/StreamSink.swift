// What a log stream needs from its sink: a buffer to put lines in, and a way to
// say "more" or "done". The sink encodes the lines itself when it sends them.
public protocol StreamSink: Sendable {
    var buffer: EventBuffer { get }
    func notify()
    /// The stream reached EOF; the sink delivers what is buffered, then forgets the stream.
    func finish()
}

/// A stream publishing to NATS through a (shared) connection.
public struct NATSStreamSink: StreamSink {
    public let publisher: NATSPublisher
    public let connection: NATSConnection

    public init(registry: NATSRegistry, options: NATSOptions, tls: TLSContext?, subject: String, name: String, buffer: EventBuffer, encoder: EventEncoder) {
        publisher = NATSPublisher(buffer: buffer, subject: subject, name: name, encoder: encoder)
        connection = registry.attach(publisher, options: options, tls: tls)
    }

    public var buffer: EventBuffer { publisher.buffer }
    public func notify() { connection.notify() }
    public func finish() { connection.finish(publisher) }
}
