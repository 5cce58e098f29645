fn main() -> std::process::ExitCode {
    irsa::main()
}
