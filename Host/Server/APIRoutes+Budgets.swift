import Foundation
import Hummingbird
import SwitchyardHost
import SwitchyardJSON

/// Budgets over the API: an account reads its own budgets, and an admin
/// token sets its own account's. A run may carry a spending cap of its own.
extension APIRoutes {
    func registerBudgets(on api: RouterGroup<APIRequestContext>) {
        api.get("credits/budgets") { [self] _, context in try budgets(context) }
        api.put("credits/budgets") { [self] request, context in try await setBudget(request, context) }
    }

    func budgets(_ context: APIRequestContext) throws -> Response {
        let token = try context.require(.read)
        let statuses = try ledger().budgets(account: token.account)
        return JSONResponse.make(.object(["account": .string(token.account), "budgets": JSONResponse.value(statuses)]))
    }

    /// Sets the account's budget (id `budget_ACCOUNT`). The id is never the
    /// client's: a chosen id could name, and overwrite, another account's budget.
    func setBudget(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let token = try context.require(.admin)
        let ledger = try ledger()
        let body = try await jsonBody(request, context)
        guard let limit = body["limit_minor"]?.intValue, limit >= 0 else {
            throw APIError("BODY_INVALID", "Send the limit in minor units: {\"limit_minor\": 10000} is 100.00.",
                           remediation: "limit_minor is a whole number of cents (or the currency's minor unit), 0 or more.", field: "limit_minor")
        }
        let period = body["period"]?.stringValue ?? "month"
        guard ["month", "none"].contains(period) else {
            throw APIError("BODY_INVALID", "Unknown budget period \(SafePath.shown(period)).", remediation: "Use month (resets each calendar month, UTC) or none.", field: "period")
        }
        var thresholds: [Int]?
        if let given = body["thresholds"] {
            guard let items = given.arrayValue, items.count <= 10,
                  let values = Optional(items.compactMap(\.intValue)), values.count == items.count, values.allSatisfy({ (1...100).contains($0) }) else {
                throw APIError("BODY_INVALID", "thresholds must be at most 10 percentages from 1 to 100.", remediation: "Send e.g. [50, 80, 95, 100].", field: "thresholds")
            }
            thresholds = values
        }
        let hardStop = body["hard_stop"]?.boolValue ?? true
        let status = try ledger.setAccountBudget(account: token.account, limitMinor: limit, period: period, thresholds: thresholds, hardStop: hardStop)
        return JSONResponse.make(JSONResponse.value(status))
    }

    /// The billing scope of a run started over the API: the token's account,
    /// and — when the request sets `max_spend_minor` — a budget of the run's
    /// own with a hard stop, so one run can never spend more than it was given.
    func runBilling(body: [String: JSONValue], account: String, runID: String) throws -> BillingScope {
        guard let cap = body["max_spend_minor"] else { return BillingScope(account: account, budgets: []) }
        guard let limit = cap.intValue, limit >= 0 else {
            throw APIError("BODY_INVALID", "max_spend_minor must be a whole number of minor units, 0 or more.", remediation: "Send e.g. \"max_spend_minor\": 500 for 5.00.", field: "max_spend_minor")
        }
        let budget = try ledger().openRunBudget(limitMinor: limit, account: account, label: runID)
        return BillingScope(account: account, budgets: [budget])
    }
}
