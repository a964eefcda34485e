from postbackd.cli import main

main()
