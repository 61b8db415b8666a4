from rolecall.cli import main

raise SystemExit(main())
