import ArgumentParser
import Foundation
import SwitchyardHost
import SwitchyardServer

/// API tokens for `yard serve`: each belongs to one account and has one scope.
struct TokensCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokens", abstract: "API tokens for `yard serve` (stored as SHA-256 digests; a token is shown once).",
        subcommands: [Create.self, List.self, Revoke.self])

    static func store(_ global: GlobalOptions) throws -> APIStore {
        try APIStore(pool: SQLiteJobStore(path: global.paths.jobStoreFile).pool)
    }

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a token for an account; prints it once.",
            discussion: """
                Scopes: read (the account's jobs, runs, artifacts, credits), run (also submit, cancel, upload), \
                admin (also engines, secrets, plugins and /metrics, which are the host's). Example:
                  yard tokens create --account acme --scope run
                """)
        @OptionGroup var global: GlobalOptions
        @Option(help: "The account the token acts for (lowercase letters, digits, . _ -).") var account: String
        @Option(help: "read, run or admin.") var scope: String = "read"
        @Option(help: "A note on what the token is for.") var name: String?

        func run() throws {
            do {
                guard let parsed = TokenScope(rawValue: scope) else {
                    throw YardError(.usage, "Unknown scope \(scope).", remediation: "Use read, run or admin.", field: "--scope")
                }
                let (token, record) = try TokensCommand.store(global).createToken(account: account, scope: parsed, name: name)
                if global.json {
                    printJSON(["id": record.id, "account": record.account, "scope": record.scope.rawValue, "token": token])
                    return
                }
                print(token)
                Terminal.err("token \(record.id) for account \(record.account), scope \(record.scope.rawValue): shown once, store it now.\n")
            } catch { throw fail(error, json: global.json) }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Tokens (ids, accounts, scopes; never the tokens).")
        @OptionGroup var global: GlobalOptions

        func run() throws {
            do {
                let tokens = try TokensCommand.store(global).tokens()
                if global.json { printJSON(tokens.map(TokenView.init)); return }
                if tokens.isEmpty { print("No tokens. Create one with `yard tokens create --account ACCOUNT --scope run`."); return }
                print(table(["TOKEN", "ACCOUNT", "SCOPE", "CREATED", "LAST USED", "STATE", "NAME"], tokens.map {
                    [$0.id, $0.account, $0.scope.rawValue, isoTimestamp($0.createdAt), $0.lastUsedAt.map(isoTimestamp) ?? "-",
                     $0.revokedAt == nil ? "live" : "revoked", $0.name ?? ""]
                }))
            } catch { throw fail(error, json: global.json) }
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token by id (tok_…); requests with it are refused at once.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Token id, as `yard tokens list` shows it.") var id: String

        func run() throws {
            do {
                guard try TokensCommand.store(global).revoke(id) else {
                    throw YardError("TOKEN_NOT_FOUND", "No token \(id).", remediation: "See `yard tokens list`.", field: "ID")
                }
                if global.json { printJSON(["revoked": id]) } else { print("Revoked \(id).") }
            } catch { throw fail(error, json: global.json) }
        }
    }

    struct TokenView: Encodable {
        var id, account, scope: String
        var name: String?
        var createdAt: Date
        var lastUsedAt: Date?
        var revokedAt: Date?
        init(_ token: APIToken) {
            id = token.id; account = token.account; scope = token.scope.rawValue; name = token.name
            createdAt = token.createdAt; lastUsedAt = token.lastUsedAt; revokedAt = token.revokedAt
        }
        enum CodingKeys: String, CodingKey {
            case id, account, scope, name
            case createdAt = "created_at"
            case lastUsedAt = "last_used_at"
            case revokedAt = "revoked_at"
        }
    }
}
