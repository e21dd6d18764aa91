/**
 * The conventions every ferry command follows in its help: the global options shown with each
 * command, a default said once, and an example to copy; and the shell completion generated from
 * the same program, so it never lists a command or option that does not exist.
 */
import { Help, type Command, type Option } from 'commander';

/** One or two examples per command, shown at the end of its --help. */
const EXAMPLES: Record<string, string[]> = {
  start: ['ferry start plans/users.yaml', 'ferry start plans/users.yaml --execute --wait', 'ferry start plans/users.yaml --execute --key-range 1..10000'],
  status: ['ferry status ferry/users/20250101-120000000Z', 'ferry status ferry/users/20250101-120000000Z --watch', 'ferry status <id> --json | jq .status.phase'],
  throttle: ['ferry throttle <id> --rows-per-second unlimited --concurrency 4', 'ferry throttle <id> --max-query-seconds 3600 --reason "the nightly report runs for an hour"'],
  pause: ['ferry pause <id> --reason "checking the replica"'],
  resume: ['ferry resume <id>'],
  failures: ['ferry failures <id>', 'ferry failures <id> --json'],
  retry: ['ferry retry <id> --reason "fixed the bad emails"'],
  approve: ['ferry approve <id> --gate cutover-reads --note "dashboards green"'],
  reject: ['ferry reject <id> --gate cutover-reads --by alice --reason "p99 doubled"'],
  abort: ['ferry abort <id> --reason "wrong target table"'],
  report: ['ferry report <id>', 'ferry report <id> --format html --out run.html'],
  list: ['ferry list', 'ferry list --all --plan users', 'ferry list --phase awaiting-approval'],
  verify: ['ferry verify <id>', 'ferry verify <id> --sample 5'],
  mismatches: ['ferry mismatches <id>', 'ferry mismatches <id> --show-values --limit 5'],
  worker: ['APP_DB=postgres://... ferry worker', 'ferry worker --metrics-port 9464 --metrics-host 0.0.0.0'],
  completion: ['ferry completion bash > /etc/bash_completion.d/ferry', 'echo \'eval "$(ferry completion zsh)"\' >> ~/.zshrc'],
  dev: ['ferry dev', 'DATABASE_URL=postgres://localhost/app ferry dev'],
};

/**
 * Help that says each default once: an option whose description already names its default
 * (or a flag that is simply off unless given) does not get commander's "(default: false)" too.
 */
class FerryHelp extends Help {
  override optionDescription(option: Option): string {
    if (/\(default/i.test(option.description) || (option.isBoolean() && option.defaultValue === false)) return option.description;
    return super.optionDescription(option);
  }
}

/** Applies the help conventions to the program and every command it has now. */
export function applyHelpConventions(program: Command): void {
  for (const command of [program, ...program.commands]) {
    command.createHelp = () => Object.assign(new FerryHelp(), command.configureHelp());
    command.configureHelp({ showGlobalOptions: true });
    const examples = EXAMPLES[command.name()];
    if (examples) command.addHelpText('after', `\nExamples:\n${examples.map((e) => `  $ ${e}`).join('\n')}`);
  }
  program.addHelpText(
    'after',
    '\nExit codes: 0 done; 1 failed; 2 bad input or refused (nothing changed); 3 no such migration;\n' +
      '4 Temporal or a worker unreachable (nothing sent); 5 aborted; 6 sent but not yet applied.\n' +
      'Colour only on a terminal; NO_COLOR is honoured.',
  );
}

interface CompletionSpec {
  name: string;
  description: string;
  options: { flags: string[]; description: string; takesValue: boolean }[];
}

function specOf(program: Command): { commands: CompletionSpec[]; global: CompletionSpec['options'] } {
  const optionsOf = (options: readonly Option[]) =>
    options
      .filter((o) => !o.hidden)
      .map((o) => ({ flags: [o.long, o.short].filter((f): f is string => Boolean(f)), description: o.description, takesValue: o.required || o.optional }));
  return {
    commands: program.commands.map((c) => ({ name: c.name(), description: c.description(), options: [...optionsOf(c.options), { flags: ['--help'], description: 'show help', takesValue: false }] })),
    // --version is offered at the top level only.
    global: optionsOf(program.options.filter((o) => o.long !== '--version')),
  };
}

/** A bash completion script: commands, then each command's options and the global ones; files elsewhere. */
export function bashCompletion(program: Command): string {
  const { commands, global } = specOf(program);
  const words = (options: CompletionSpec['options']) => options.flatMap((o) => o.flags).join(' ');
  return [
    '# bash completion for ferry. Load it with: eval "$(ferry completion bash)"',
    '_ferry() {',
    '  local cur="${COMP_WORDS[COMP_CWORD]}" command="${COMP_WORDS[1]}" options=""',
    '  if [ "$COMP_CWORD" -eq 1 ]; then',
    `    COMPREPLY=($(compgen -W "${commands.map((c) => c.name).join(' ')} ${words(global)} --help --version -V" -- "$cur"))`,
    '    return',
    '  fi',
    '  case "$command" in',
    ...commands.map((c) => `    ${c.name}) options="${words(c.options)}" ;;`),
    '  esac',
    '  if [[ "$cur" == -* ]]; then',
    `    COMPREPLY=($(compgen -W "$options ${words(global)}" -- "$cur"))`,
    '  else',
    '    COMPREPLY=($(compgen -f -- "$cur"))',
    '  fi',
    '}',
    'complete -o default -F _ferry ferry',
    '',
  ].join('\n');
}

/** A zsh completion function (`#compdef ferry`): commands with their descriptions, options with theirs. */
export function zshCompletion(program: Command): string {
  const { commands, global } = specOf(program);
  // _arguments specs: brackets and colons in descriptions would end the spec early.
  const text = (s: string) => s.replace(/[[\]:'\\]/g, ' ').replace(/\s+/g, ' ').trim();
  const argument = (o: CompletionSpec['options'][number]) =>
    o.flags.map((flag) => `'${flag}[${text(o.description)}]${o.takesValue ? ':value: ' : ''}'`).join(' ');
  return [
    '#compdef ferry',
    '# zsh completion for ferry. Load it with: eval "$(ferry completion zsh)", or save it as _ferry on your $fpath.',
    '_ferry() {',
    '  local -a commands',
    `  commands=(${commands.map((c) => `'${c.name}:${text(c.description).slice(0, 70)}'`).join(' ')})`,
    '  if (( CURRENT == 2 )); then',
    "    _describe 'ferry command' commands",
    '    return',
    '  fi',
    '  case "$words[2]" in',
    ...commands.map((c) => `    ${c.name}) _arguments ${[...c.options, ...global].map(argument).join(' ')} '*:argument:_files' ;;`),
    '  esac',
    '}',
    'if [[ "${funcstack[1]}" == _ferry ]]; then _ferry "$@"; else compdef _ferry ferry; fi',
    '',
  ].join('\n');
}

/** `ferry completion bash|zsh`: prints the script for that shell. */
