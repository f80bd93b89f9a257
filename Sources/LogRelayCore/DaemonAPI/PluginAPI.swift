// The Docker plugin endpoints, mapped onto the driver. Every call but StartLogging answers
// at once; StartLogging (files to read, patterns to compile) runs on the server's workers.
public struct PluginAPI: Sendable {
    let driver: PluginDriver

    public init(driver: PluginDriver) { self.driver = driver }

    /// The requests that go to the HTTP server's worker threads.
    public static func isSlow(_ req: HTTPRequest) -> Bool { req.path == "/LogDriver.StartLogging" }

    public func handle(_ req: HTTPRequest) -> HTTPReply {
        switch (req.method, req.path) {
        case ("POST", "/Plugin.Activate"):
            return json(200, "{\"Implements\":[\"LogDriver\"]}")
        case ("POST", "/LogDriver.Capabilities"):
            return json(200, "{\"Cap\":{\"ReadLogs\":false}}")
        case ("POST", "/LogDriver.StartLogging"):
            switch driver.startLogging(req.body) {
            case .ok: return json(200, "{}")
            case .badRequest(let m): return HTTPReply(status: 400, body: HTTPServer.errorBody(m))
            case .refused(let m): return HTTPReply(status: 200, body: HTTPServer.errorBody(m))
            }
        case ("POST", "/LogDriver.StopLogging"):
            driver.stopLogging(req.body)
            return json(200, "{}")
        case ("GET", "/metrics"):
            return HTTPReply(status: 200, body: Array(driver.metricsText().utf8), contentType: "text/plain; version=0.0.4")
        case (_, "/Plugin.Activate"), (_, "/LogDriver.Capabilities"), (_, "/LogDriver.StartLogging"), (_, "/LogDriver.StopLogging"), (_, "/metrics"):
            return HTTPReply(status: 405, body: HTTPServer.errorBody("method \(req.method) not allowed on \(req.path)"), contentType: "application/json")
        default:
            return HTTPReply(status: 404, body: HTTPServer.errorBody("unknown endpoint \(req.path)"), contentType: "application/json")
        }
    }

    private func json(_ status: Int, _ s: String) -> HTTPReply {
        HTTPReply(status: status, body: Array(s.utf8))
    }
}
