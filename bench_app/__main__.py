from bench_app.cli.main import main

main()
