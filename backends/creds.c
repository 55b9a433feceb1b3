/*
 * creds.c - credentials, region and endpoint, resolved the way the AWS tools do.
 *
 * Secrets read here are kept only in the s3_config and wiped when it is cleared; nothing in this
 * file logs a value, only where a value came from.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "s3.h"
#include "util.h"

/* Looks up key in section [section] of an INI file; returns a malloc'ed value or NULL. */
static char *ini_get(const char *path, const char *section, const char *key)
{
	FILE *f = fopen(path, "re");
	char line[4096], *val = NULL;
	bool in = false;
	if (!f)
		return NULL;
	while (fgets(line, sizeof(line), f)) {
		char *l = tfs_trim(line);
		if (*l == '#' || *l == ';' || !*l)
			continue;
		if (*l == '[') {
			char *end = strchr(l, ']');
			if (!end)
				continue;
			*end = '\0';
			in = strcmp(tfs_trim(l + 1), section) == 0;
			continue;
		}
		char *eq = strchr(l, '=');
		if (!in || !eq)
			continue;
		*eq = '\0';
		if (strcmp(tfs_trim(l), key) == 0) {
			free(val);
			val = strdup(tfs_trim(eq + 1));
		}
	}
	fclose(f);
	return val;
}

static char *home_file(const char *env, const char *rel)
{
	const char *p = getenv(env);
	if (p && *p)
		return strdup(p);
	const char *home = getenv("HOME");
	if (!home)
		return NULL;
	size_t n = strlen(home) + strlen(rel) + 2;
	char *s = malloc(n);
	if (s)
		snprintf(s, n, "%s/%s", home, rel);
	return s;
}

static char *env_dup(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? strdup(v) : NULL;
}

int s3_resolve_credentials(struct s3_config *cfg, const char *profile_opt)
{
	const char *profile = profile_opt ? profile_opt : getenv("AWS_PROFILE");
	if (!profile || !*profile)
		profile = "default";
	char *credfile = home_file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
	char *conffile = home_file("AWS_CONFIG_FILE", ".aws/config");
	char *profsec = NULL;
	int ret = 0;

	if (strcmp(profile, "default") == 0)
		profsec = strdup("default");
	else if (asprintf(&profsec, "profile %s", profile) < 0)
		profsec = NULL;

	/* Environment keys, unless a profile was asked for explicitly on the command line. */
	if (!cfg->access_key && !profile_opt && getenv("AWS_ACCESS_KEY_ID") &&
	    getenv("AWS_SECRET_ACCESS_KEY")) {
		cfg->access_key = env_dup("AWS_ACCESS_KEY_ID");
		cfg->secret_key = env_dup("AWS_SECRET_ACCESS_KEY");
		cfg->session_token = env_dup("AWS_SESSION_TOKEN");
		tfs_debug("credentials: from the environment");
	}
	if (!cfg->access_key && credfile) {
		cfg->access_key = ini_get(credfile, profile, "aws_access_key_id");
		cfg->secret_key = ini_get(credfile, profile, "aws_secret_access_key");
		cfg->session_token = ini_get(credfile, profile, "aws_session_token");
		if (cfg->access_key && cfg->secret_key)
			tfs_debug("credentials: profile '%s' of %s", profile, credfile);
	}
	if (!cfg->region)
		cfg->region = env_dup("AWS_REGION");
	if (!cfg->region)
		cfg->region = env_dup("AWS_DEFAULT_REGION");
	if (!cfg->region && conffile && profsec)
		cfg->region = ini_get(conffile, profsec, "region");
	if (!cfg->region && credfile)
		cfg->region = ini_get(credfile, profile, "region");
	if (!cfg->region)
		cfg->region = strdup(S3_DEFAULT_REGION);
	if (!cfg->endpoint)
		cfg->endpoint = env_dup("AWS_ENDPOINT_URL_S3");
	if (!cfg->endpoint)
		cfg->endpoint = env_dup("AWS_ENDPOINT_URL");
	if (!cfg->endpoint && conffile && profsec)
		cfg->endpoint = ini_get(conffile, profsec, "endpoint_url");

	if (!cfg->access_key || !cfg->secret_key) {
		if (profile_opt)
			tfs_err("credentials: profile '%s' not found or incomplete in %s", profile,
				credfile ? credfile : "~/.aws/credentials");
		free(cfg->access_key);
		free(cfg->secret_key);
		free(cfg->session_token);
		cfg->access_key = cfg->secret_key = cfg->session_token = NULL;
		ret = -ENOKEY;
	}
	free(credfile);
	free(conffile);
	free(profsec);
	return ret;
}

static void wipe_free(char **s)
{
	if (*s) {
		explicit_bzero(*s, strlen(*s));
		free(*s);
		*s = NULL;
	}
}

void s3_config_clear(struct s3_config *cfg)
{
	free(cfg->endpoint);
	free(cfg->region);
	free(cfg->bucket);
	free(cfg->ca_file);
	wipe_free(&cfg->access_key);
	wipe_free(&cfg->secret_key);
	wipe_free(&cfg->session_token);
	cfg->endpoint = cfg->region = cfg->bucket = cfg->ca_file = NULL;
}
