"""Jobs: every long operation as a row; executors run by a backend under the YMIR contract."""
