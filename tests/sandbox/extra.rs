attack!(probe, |lab| {
    let session = lab.session();
    let out = lab.sh(&session, r#"
cp /usr/bin/id ./myid; chmod 6755 ./myid; ls -la ./myid; python3 -c "import os; fd=os.open('made', os.O_CREAT|os.O_WRONLY, 0o4755); print('open ok')"; ls -la made
mkdir d; chmod g+s d; ls -ld d
"#);
    println!("{}\n{}", out.stdout, out.stderr);
    let out = std::process::Command::new("ls").arg("-la").arg(lab.worktree()).output().unwrap();
    println!("HOST:\n{}", String::from_utf8_lossy(&out.stdout));
});
