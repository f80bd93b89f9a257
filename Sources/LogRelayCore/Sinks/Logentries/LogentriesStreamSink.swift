/// A stream sending its lines to a Logentries token endpoint through a (shared) connection.
public struct LogentriesStreamSink: StreamSink {
    public let publisher: LogentriesPublisher
    public let connection: LogentriesConnection

    public init(registry: LogentriesRegistry, options: LogentriesOptions, tls: TLSContext?, name: String,
                buffer: EventBuffer, encoder: EventEncoder) {
        publisher = LogentriesPublisher(buffer: buffer, name: name, wire: LogentriesWire(token: options.token, encoder: encoder))
        connection = registry.attach(publisher, options: options, tls: tls)
    }

    public var buffer: EventBuffer { publisher.buffer }
    public func notify() { connection.notify() }
    public func finish() { connection.finish(publisher) }
}
