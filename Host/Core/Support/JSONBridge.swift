import Foundation
import SwitchyardJSON

/// JSONSerialization objects for documents built by hand at the ABI boundary.
func jsonObject(_ value: JSONValue) -> Any {
    switch value {
    case .null: return NSNull()
    case .bool(let b): return b
    case .number(let n): return n.rounded() == n && abs(n) < 9e15 ? Int(n) as Any : n as Any
    case .string(let s): return s
    case .array(let a): return a.map(jsonObject)
    case .object(let o): return o.mapValues(jsonObject)
    }
}
