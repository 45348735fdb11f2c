/* cli.h: the commands of the kiln tool (tools/kiln/main.c dispatches to them). Each takes the
 * arguments after its name and returns the process's exit status. */
#ifndef KILN_TOOLS_CLI_H
#define KILN_TOOLS_CLI_H

int kiln_cli_render(int argc, char **argv);  /* tools/kiln/render.c */
int kiln_cli_devices(int argc, char **argv); /* tools/kiln/devices.c */

#endif
