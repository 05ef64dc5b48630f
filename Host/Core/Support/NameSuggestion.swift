import Foundation

/// "Did you mean …?" for names a person types: presets, capabilities, engines,
/// inputs, config keys and commands. A candidate is suggested when it is a
/// few edits away (the allowance grows with the name's length), or when the
/// typed name is a distinctive prefix of it.
public enum NameSuggestion {
    /// The closest candidates, best first (at most `limit`).
    public static func closest(to name: String, among candidates: [String], limit: Int = 2) -> [String] {
        let typed = name.lowercased()
        guard !typed.isEmpty else { return [] }
        let allowance = max(1, min(3, typed.count / 3))
        var scored: [(String, Int)] = []
        for candidate in Set(candidates) where candidate != name {
            let lower = candidate.lowercased()
            let distance = editDistance(typed, lower)
            if distance <= allowance {
                scored.append((candidate, distance))
            } else if typed.count >= 3, lower.hasPrefix(typed) || lower.contains(typed) {
                scored.append((candidate, allowance + 1))
            }
        }
        return scored.sorted { ($0.1, $0.0) < ($1.1, $1.0) }.prefix(limit).map(\.0)
    }

    /// " Did you mean X?" (or "X or Y?"), or "" when nothing is close.
    public static func sentence(for name: String, among candidates: [String]) -> String {
        let close = closest(to: name, among: candidates)
        guard !close.isEmpty else { return "" }
        return " Did you mean \(close.joined(separator: " or "))?"
    }

    /// Optimal string alignment distance: insertions, deletions, substitutions
    /// and swaps of two neighbours each cost one (typing mistakes).
    public static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous2 = [Int](repeating: 0, count: b.count + 1)
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    current[j] = min(current[j], previous2[j - 2] + 1)
                }
            }
            previous2 = previous
            previous = current
        }
        return previous[b.count]
    }
}
