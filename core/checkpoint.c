/* checkpoint.c: placeholder until its implementation lands. */
typedef int simclr_placeholder_checkpoint;
