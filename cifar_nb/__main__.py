from cifar_nb.cli import main

raise SystemExit(main())
