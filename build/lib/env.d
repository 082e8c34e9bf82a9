build/lib/env.o: lib/env.c lib/env.h lib/limits.h
lib/env.h:
lib/limits.h:
