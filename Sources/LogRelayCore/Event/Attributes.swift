// The event's `attrs`: container labels and env vars picked by the labels, labels-regex,
// env and env-regex options, as Docker's Info.ExtraAttributes does (protocol doc §6.2).
// Computed once per container; keys keep their original case.

public enum Attributes {
    /// Docker's precedence: labels < labels-regex < env < env-regex (later writes win).
    /// Regexes match anywhere in the key (unanchored, like Go's MatchString).
    /// Sorted by key (bytewise) so events are stable.
    public static func extract(from info: ContainerInfo, options: CommonOptions) throws(OptionError) -> [(key: String, value: String)] {
        var attrs: [String: String] = [:]

        for name in options.labels {
            if let v = info.containerLabels[name] { attrs[name] = v }
        }
        if let pattern = options.labelsRegex {
            let re = try LogOptions.compileRegex(pattern, key: "labels-regex")
            for (k, v) in info.containerLabels where re.matches(k) { attrs[k] = v }
        }

        if !options.env.isEmpty || options.envRegex != nil {
            // "K=V" split at the first "="; entries without "=" are ignored; the last duplicate wins.
            var env: [String: String] = [:]
            for entry in info.containerEnv {
                let u = entry.utf8
                guard let eq = u.firstIndex(of: UInt8(ascii: "=")) else { continue }
                env[String(decoding: u[..<eq], as: UTF8.self)] = String(decoding: u[u.index(after: eq)...], as: UTF8.self)
            }
            for name in options.env {
                if let v = env[name] { attrs[name] = v }
            }
            if let pattern = options.envRegex {
                let re = try LogOptions.compileRegex(pattern, key: "env-regex")
                for (k, v) in env where re.matches(k) { attrs[k] = v }
            }
        }

        return attrs.map { (key: $0.key, value: $0.value) }
            .sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
    }
}
