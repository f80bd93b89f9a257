// What a log stream needs from its sink: a buffer to put lines in, and a way to
// say "more" or "done". The sink encodes the lines itself when it sends them.
public protocol StreamSink: Sendable {
    var buffer: EventBuffer { get }
    func notify()
    /// The stream reached EOF; the sink delivers what is buffered, then forgets the stream.
    func finish()
}

/// A stream attached to a (shared) connection of either sink.
public struct ConnectionSink<P: SinkProtocol>: StreamSink {
    public let attachment: SinkAttachment<P.Route>
    public let connection: SinkConnection<P>

    public init(attachment: SinkAttachment<P.Route>, connection: SinkConnection<P>) {
        self.attachment = attachment
        self.connection = connection
    }

    public var buffer: EventBuffer { attachment.buffer }
    public func notify() { connection.notify() }
    public func finish() { connection.finish(attachment) }
}
