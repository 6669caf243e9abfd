from bench_app.cli.tools import main

main()
