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

/// The inverse of jsonObject, for values that came from JSONSerialization.
func jsonValue(_ object: Any) -> JSONValue {
    switch object {
    case is NSNull: return .null
    case let n as NSNumber:
        // JSONSerialization boxes booleans as NSNumber with the "c" (char) type.
        return String(cString: n.objCType) == "c" ? .bool(n.boolValue) : .number(n.doubleValue)
    case let i as Int: return .number(Double(i))
    case let d as Double: return .number(d)
    case let s as String: return .string(s)
    case let a as [Any]: return .array(a.map(jsonValue))
    case let o as [String: Any]: return .object(o.mapValues(jsonValue))
    default: return .null
    }
}
