/**
 * The absolute path of a Python 3.10+ interpreter that can import cloudpickle, found or prepared
 * (CODING_ENV_PYTHON, cached answer, PATH, /usr/bin/python3, a venv, apt when root on Debian).
 * @throws {Error} when none can be found or prepared; the message says how to fix it.
 */
export declare function resolvePython(): Promise<string>;
