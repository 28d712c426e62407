package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/surge-retail/surge/config"
	"github.com/surge-retail/surge/internal/wechatpay/wechatpaytest"
)

func init() { rootCmd.AddCommand(newWeChatPayTestKeysCmd()) }

func newWeChatPayTestKeysCmd() *cobra.Command {
	var (
		wxAddr, serveAddr, configOut string
		force                        bool
	)
	cmd := &cobra.Command{
		Use:   "wechatpay-test-keys DIR",
		Short: "Write fresh WeChat Pay TEST keys for a rehearsal against the fake WeChat Pay (never for production)",
		Long: `surge wechatpay-test-keys writes freshly generated WeChat Pay TEST keys into DIR
(created if missing; secrets with mode 0600) and prints the surge serve
settings and the surge loadtest flags that use them.

THESE ARE TEST KEYS. They are made up on this machine: a fake merchant, a fake
mchid and appid, and the private key of a fake WeChat Pay platform, so that
surge loadtest --wechatpay-test-keys DIR can play WeChat Pay and sign payment
notifications that surge serve accepts. Use them only for rehearsals against
the fake WeChat Pay of surge loadtest, never in production: a server with
these keys accepts payments that nobody paid. Real merchant keys come from
the WeChat Pay merchant platform (pay.weixin.qq.com).

DIR must not hold keys already (--force overwrites them), so that a real
payment.keys_dir is never overwritten by mistake.

Example:
  surge wechatpay-test-keys ./wx-test-keys --config-out wx-test.json
  surge serve --demo --config wx-test.json
  surge loadtest --target http://127.0.0.1:8080 --admin-token $TOKEN --scenario flash --setup \
      --wechatpay-test-keys ./wx-test-keys --wechatpay-addr 127.0.0.1:8090`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, a := range []struct{ flag, addr string }{{"--wechatpay-addr", wxAddr}, {"--serve-addr", serveAddr}} {
				if host, port, err := net.SplitHostPort(a.addr); err != nil || host == "" || port == "" {
					return fmt.Errorf("%s %q: want host:port", a.flag, a.addr)
				}
			}
			dir, err := filepath.Abs(args[0])
			if err != nil {
				return fmt.Errorf("cannot write test keys: %w", err)
			}
			if !force {
				_, err := os.Stat(filepath.Join(dir, wechatpaytest.FileMerchantPrivateKey))
				if err == nil {
					return fmt.Errorf("%s already holds keys (%s); pass --force to overwrite them with TEST keys", dir, wechatpaytest.FileMerchantPrivateKey)
				}
				if !errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("cannot write test keys: %w", err)
				}
			}
			keys, err := wechatpaytest.GenerateKeys()
			if err != nil {
				return err
			}
			if err := wechatpaytest.WriteKeys(dir, keys); err != nil {
				return err
			}
			settings := []struct{ key, value string }{
				{"payment.provider", "wechat"},
				{"payment.keys_dir", dir},
				{"payment.base_url", "http://" + wxAddr},
				{"payment.notify_url", "http://" + serveAddr + "/api/v1/payments/wechat/notify"},
			}
			if configOut != "" {
				payment := map[string]string{}
				for _, s := range settings {
					payment[s.key[len("payment."):]] = s.value
				}
				b, _ := json.MarshalIndent(map[string]any{"payment": payment}, "", "  ")
				if err := os.WriteFile(configOut, append(b, '\n'), 0o644); err != nil {
					return fmt.Errorf("cannot write the config file: %w", err)
				}
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Wrote WeChat Pay TEST keys to %s (mchid %s, appid %s).\n", dir, keys.MchID, keys.AppID)
			fmt.Fprintf(out, "TEST KEYS: only for rehearsals against the fake WeChat Pay of surge loadtest, never in production.\n\n")
			fmt.Fprintf(out, "surge serve settings (environment, or --config FILE with {\"payment\": {...}}):\n")
			for _, s := range settings {
				fmt.Fprintf(out, "  %s=%s\n", config.EnvName(s.key), s.value)
			}
			if configOut != "" {
				fmt.Fprintf(out, "  (written as a config file to %s)\n", configOut)
			}
			fmt.Fprintf(out, "\nsurge loadtest flags (the fake WeChat Pay runs inside surge loadtest):\n")
			fmt.Fprintf(out, "  --wechatpay-test-keys %s --wechatpay-addr %s\n", dir, wxAddr)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&wxAddr, "wechatpay-addr", "127.0.0.1:8090", "host:port the fake WeChat Pay of surge loadtest will listen on (payment.base_url)")
	f.StringVar(&serveAddr, "serve-addr", "127.0.0.1:8080", "host:port surge serve is reached at by the fake WeChat Pay (payment.notify_url)")
	f.StringVar(&configOut, "config-out", "", "also write the surge serve settings as a JSON config file here")
	f.BoolVar(&force, "force", false, "overwrite keys already in DIR")
	return cmd
}
