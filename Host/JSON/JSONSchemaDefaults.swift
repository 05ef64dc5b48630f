import Foundation

extension JSONSchema {
    /// `instance` with the `default` of every missing object member filled in.
    ///
    /// Contract:
    /// - only members declared under `properties` are filled, and only where the instance
    ///   is an object lacking that member (an explicit `null` is kept);
    /// - the default comes from the property's own schema, or else from the schema its
    ///   `$ref` points at;
    /// - nested objects are filled too, including defaults just inserted, and so are array
    ///   elements (`items`) and extra members (`additionalProperties`);
    /// - defaults are taken only through unconditional paths: the schema itself, `$ref` and
    ///   `allOf`. Never through `anyOf`, `oneOf`, `not` or `if`/`then`/`else`, whose
    ///   branch depends on the data. When several apply, the schema's own `properties` win,
    ///   then `$ref`, then `allOf` in order;
    /// - values are not validated; validate after filling if needed;
    /// - work is bounded like `validate`: parts beyond the depth limit or the evaluation
    ///   budget are left as they are.
    public func applyingDefaults(to instance: JSONValue) -> JSONValue {
        applyDefaults(of: root, to: instance, depth: 0, budget: EvaluationBudget())
    }

    private func applyDefaults(of node: SchemaNode, to instance: JSONValue, depth: Int, budget: EvaluationBudget) -> JSONValue {
        guard depth < SchemaEvaluator.maximumDepth, budget.spend(), case .rules(let rules) = node else { return instance }
        var result = instance

        switch result {
        case .object(var members):
            for property in rules.properties {
                if members[property.name] == nil, let fallback = defaultValue(of: property.schema, depth: depth + 1) {
                    members[property.name] = fallback
                }
                if let value = members[property.name] {
                    members[property.name] = applyDefaults(of: property.schema, to: value, depth: depth + 1, budget: budget)
                }
            }
            if let additional = rules.additionalProperties {
                for name in members.keys where !rules.propertyNames.contains(name) {
                    if let value = members[name] {
                        members[name] = applyDefaults(of: additional, to: value, depth: depth + 1, budget: budget)
                    }
                }
            }
            result = .object(members)
        case .array(let elements):
            if let items = rules.items {
                result = .array(elements.map { applyDefaults(of: items, to: $0, depth: depth + 1, budget: budget) })
            }
        default:
            break
        }

        if let ref = rules.ref, let target = references[ref] {
            result = applyDefaults(of: target, to: result, depth: depth + 1, budget: budget)
        }
        for subschema in rules.allOf {
            result = applyDefaults(of: subschema, to: result, depth: depth + 1, budget: budget)
        }
        return result
    }

    private func defaultValue(of node: SchemaNode, depth: Int) -> JSONValue? {
        guard depth < SchemaEvaluator.maximumDepth, case .rules(let rules) = node else { return nil }
        if let value = rules.defaultValue { return value }
        guard let ref = rules.ref, let target = references[ref] else { return nil }
        return defaultValue(of: target, depth: depth + 1)
    }
}
