/* cpu-level.h: tests that meson runs once per instruction-set level.
 *
 * tests/core/meson.build registers some tests a second time per level with
 * SIMCLR_CPU=generic|avx2|avx512, so every kernel runs against its naive
 * twin on every set the machine has. Where the CPU lacks the level asked
 * for, the core falls back to its best one (simclr_cpu_check_env says so):
 * that run would repeat the default one, so it is skipped instead, as TAP
 * "# SKIP" (meson shows SKIP). Include after glib.h; call after
 * g_test_init and return g_test_run () when it returns TRUE.
 */
#pragma once

#include <glib.h>

#include "simclr/cpu.h"

static void
cpu_level_skip (gconstpointer data)
{
  g_test_skip ((const char *) data);
}

static gboolean
cpu_level_unavailable (const char *suite)
{
  static SimclrError err;
  if (simclr_cpu_check_env (&err) == SIMCLR_OK) {
    g_test_message ("instruction set: %s", simclr_cpu_describe ());
    return FALSE;
  }
  char *path = g_strdup_printf ("/%s/cpu-level-unavailable", suite);
  g_test_add_data_func (path, err.message, cpu_level_skip);
  g_free (path);
  return TRUE;
}
