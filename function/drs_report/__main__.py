from drs_report.cli import main

raise SystemExit(main())
