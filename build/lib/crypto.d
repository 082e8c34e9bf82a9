build/lib/crypto.o: lib/crypto.c lib/crypto.h lib/limits.h lib/error.h
lib/crypto.h:
lib/limits.h:
lib/error.h:
