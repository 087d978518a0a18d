"""The one exception type for bad user input, and the wrapper that turns it into one printed line."""
import sys


class UserError(Exception):
    """Bad input from the user: a missing file, a wrong flag, malformed data.

    The message is printed as one line, naming the file or flag and what to do; never a traceback.
    """


def run_cli(main, *args):
    """Call ``main(*args)``; a :class:`UserError` becomes ``error: <message>`` on stderr and exit status 2.

    Parameters
    ----------
    main : callable
        The entry script's main function.

    Returns
    -------
    object
        Whatever ``main`` returns.
    """
    try:
        return main(*args)
    except UserError as err:
        print('error: %s' % ' '.join(str(err).split()), file=sys.stderr)
        sys.exit(getattr(err, 'exit_status', 2))
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        sys.exit(130)
