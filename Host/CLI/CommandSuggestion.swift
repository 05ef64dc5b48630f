import ArgumentParser
import SwitchyardHost

/// "unknown command 'jbos' for 'yard'. Did you mean 'jobs'?", the way gh and
/// cobra answer a mistyped command, before ArgumentParser would report it as
/// an unexpected argument.
enum CommandSuggestion {
    /// A message when the words before the first option name a command group
    /// and then something that is not one of its commands.
    static func unknownSubcommand(in arguments: [String], root: ParsableCommand.Type = Yard.self) -> String? {
        var command: ParsableCommand.Type = root
        var path = [root._commandName]
        for word in arguments {
            if word.hasPrefix("-") || word == "help" { return nil }
            let subcommands = command.configuration.subcommands
            guard !subcommands.isEmpty else { return nil }
            let names = subcommands.map { $0._commandName }
            guard let index = names.firstIndex(of: word) ?? subcommands.firstIndex(where: { $0.configuration.aliases.contains(word) }) else {
                let visible = subcommands.filter { $0.configuration.shouldDisplay }.map { $0._commandName }
                let hint = NameSuggestion.closest(to: word, among: visible)
                return "unknown command '\(word)' for '\(path.joined(separator: " "))'." + (hint.isEmpty ? "" : " Did you mean \(hint.map { "'\($0)'" }.joined(separator: " or "))?")
            }
            command = subcommands[index]
            path.append(word)
        }
        return nil
    }
}
